"""Ingest throughput with the privacy stage on for a personal source, as a ratio of the same run
without it (issue 15's benchmark), end to end over Kafka.

Each phase: a fresh database and topic, the same readings pre-produced as messages of 1,000
canonical readings (500 e-mail-like device ids, positions at full precision, 1,000 distinct
readings per device), then a fresh `urbanpulse run` consumes them; readings/s = readings stored
between the first and the last commit seen / the time between them (benchmarks/http_ingest.py's
Kafka phase: the consumer group's join is not counted). Phase "off": no privacy configuration;
phase "on": ``privacy.sources: {kafka: personal}`` with a key, so every reading is pseudonymised
(HMAC per device and month), coarsened to 3 decimals and its series recorded as personal.
Phases alternate off, on, off, on, ... so drift on the shared machine hits both alike; the
figure is mean(on) / mean(off) and the per-pair ratios. Detection is off (ingest only).

    python benchmarks/privacy_ingest.py [--readings 200000] [--pairs 3] [--json out.json]

Besides wall-clock readings/s, each phase reports the **service process's CPU time per reading**
over the same window (psutil, user + system): the privacy stage is CPU spent in that process, and
on the shared 2-core machine the wall-clock rate of a one-second burst moves by 2x between
identical phases while CPU per reading moves little. The CPU ratio (off / on, as a throughput
ratio) is the figure to read; PostgreSQL's and the broker's CPU are not included (other sessions
share the server, so they cannot be attributed).

Reports numbers; does not pass or fail. Needs PostgreSQL on 127.0.0.1:5432 and the Tansu binary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import services  # noqa: E402
from http_ingest import count  # noqa: E402
from service_process import ServiceProcess  # noqa: E402

DEVICES = 500


def payload(k0: int, n: int, base_ms: int) -> bytes:
    """Readings k0..k0+n: device i % 500, one reading per device and second."""
    return json.dumps([{"sensor_id": f"phone-{i % DEVICES:03d}.user@example.org", "metric": "speed",
                        "ts": base_ms + (i // DEVICES) * 1000, "value": round((i * 7 % 800) / 10, 1),
                        "lat": 52.5 + (i % 997) * 1.2345e-5, "lon": 13.4 + (i % 991) * 2.3456e-5}
                       for i in range(k0, k0 + n)]).encode()


def phase(tansu, work: Path, n: int, base_ms: int, privacy: bool) -> dict:  # noqa: ANN001
    topic = f"bench-privacy-{uuid.uuid4().hex[:6]}"
    services.create_topic(tansu.bootstrap, topic, partitions=1)
    services.produce_kafka(tansu.bootstrap, topic, [payload(k, min(1000, n - k), base_ms) for k in range(0, n, 1000)])
    name, dsn = services.create_database(prefix="up_bench_privacy")
    config: dict = {"database": {"dsn": dsn}, "detection": {"enabled": False},
                    "kafka": {"enabled": True, "bootstrap_servers": tansu.bootstrap, "topics": [topic],
                              "group_id": f"bench-{uuid.uuid4().hex[:6]}"}}
    if privacy:
        key = work / "pseudonym.key"
        key.write_text(uuid.uuid4().hex * 2)
        config["privacy"] = {"sources": {"kafka": "personal"}, "key_file": str(key)}
    svc = ServiceProcess(config, work).start(timeout=180)
    try:
        result = asyncio.run(measure(dsn, n, svc.proc.pid))
        assert asyncio.run(count(dsn)) == n
        if privacy:  # the stage really ran: no raw id stored, one pseudonym per device
            import asyncpg

            async def check() -> tuple[int, int]:
                conn = await asyncpg.connect(dsn)
                try:
                    return (await conn.fetchval("SELECT count(*) FROM series WHERE sensor_id LIKE 'psn-%' "
                                                "AND data_class = 'personal'"),
                            await conn.fetchval("SELECT count(*) FROM series WHERE sensor_id LIKE '%@%'"))
                finally:
                    await conn.close()
            pseudonymised, raw = asyncio.run(check())
            assert raw == 0 and pseudonymised >= DEVICES, (pseudonymised, raw)
    finally:
        svc.stop_quietly()
        services.drop_database(name)
    return result


async def measure(dsn: str, n: int, pid: int, timeout: float = 600) -> dict:
    """Poll the stored count every 20 ms; from the first commit seen to the last: readings/s and the
    service process's CPU seconds per reading."""
    import psutil

    proc = psutil.Process(pid)

    def cpu() -> float:
        t = proc.cpu_times()
        return t.user + t.system

    first = last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = await count(dsn)
        now, used = time.perf_counter(), cpu()
        if c > 0 and first is None:
            first = (now, c, used)
        if c >= n:
            last = (now, c, used)
            break
        await asyncio.sleep(0.02)
    if first is None or last is None or last[0] == first[0]:
        raise RuntimeError("not everything stored in time (or all in one batch: use more readings)")
    stored = last[1] - first[1]
    return {"readings": n, "seconds": last[0] - first[0], "readings_per_s": stored / (last[0] - first[0]),
            "cpu_us_per_reading": 1e6 * (last[2] - first[2]) / stored}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readings", type=int, default=200_000)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="up-bench-privacy-"))
    # one month (pseudonym period) for every reading: readings per device * 1 s after base
    base_ms = int(time.time() * 1000) - 86_400_000
    runs: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    tansu = services.start_tansu(work / "tansu")
    try:
        for pair in range(args.pairs):
            for mode in ("off", "on"):
                r = phase(tansu, work, args.readings, base_ms, mode == "on")
                runs[mode].append(r["readings_per_s"])
                cpu[mode].append(r["cpu_us_per_reading"])
                print(f"pair {pair + 1} {mode:>3}: {r['readings_per_s']:>10,.0f} readings/s, "
                      f"{r['cpu_us_per_reading']:.2f} µs service CPU per reading", flush=True)
    finally:
        tansu.stop()
    pairs = [on / off for on, off in zip(runs["on"], runs["off"])]
    ratio = statistics.mean(runs["on"]) / statistics.mean(runs["off"])
    cpu_pairs = [off / on for on, off in zip(cpu["on"], cpu["off"])]
    cpu_ratio = statistics.median(cpu["off"]) / statistics.median(cpu["on"])
    print(f"wall clock: mean(on)/mean(off) = {ratio:.1%}; per pair: {', '.join(f'{p:.1%}' for p in pairs)}")
    print(f"service CPU per reading, as a throughput ratio: median(off)/median(on) = {cpu_ratio:.1%}; per pair: "
          f"{', '.join(f'{p:.1%}' for p in cpu_pairs)}")
    if args.json:
        args.json.write_text(json.dumps({"readings": args.readings, "runs": runs, "pair_ratios": pairs,
                                         "ratio": ratio, "cpu_us_per_reading": cpu, "cpu_pair_ratios": cpu_pairs,
                                         "cpu_ratio": cpu_ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
