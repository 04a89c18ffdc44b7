"""How fast a real service takes HTTP ingest bodies whose lines are all rejected (reject39).

A hostile client or a broken integrator sends an NDJSON body of N lines every one of which
validation rejects; the request holds a connection and a core until every line is quarantined
(durably) and the 200 with every rejection listed is sent. Before reject39 a body of 1 M such
lines took 56-67 s (benchmarks/README.md ``ingest32``).

For each src tree given (``--src A=/tmp/main/src --src B=src``) a real ``urbanpulse run``
subprocess is started on a fresh PostgreSQL database (detection off, the HTTP limits raised to
take the bodies), and each case is POSTed to each service in turn (ABAB..., so both see the same
machine load), gzipped, with an ingest key. A case is a body of N lines of one kind:

- ``valid``: readings that are stored (each round new timestamps, so nothing is a duplicate);
- ``out_of_range``: a temperature of 9999 (rejected by validation after a clean decode);
- ``unknown_metric``: metric ``no_such_metric`` (same);
- ``bad_timestamp``: ``"ts": "not a time"`` (the format's per-message path);
- ``bad_sensor_id``: ``"sensor_id": ""`` (same);
- ``malformed``: a line cut short (invalid JSON);
- ``empty_object``: ``{}`` (missing fields).

Reported per case and service: the answer's status, the request's wall time (from the POST to the
whole answer read), lines/s, the CPU seconds the service process and its PostgreSQL backends used
over the request (on a shared machine the wall time depends on what else runs; CPU less so), and
that the database holds what the answer says (readings stored +
quarantine rows = lines). With two src trees, also the ratio A/B of wall times per case (>1: B is
faster), each pair measured back to back.

    python benchmarks/http_ingest_reject.py --src A=/tmp/reject39_main/src --src B=src \\
        --lines 100000 1000000 [--kinds valid out_of_range ...] [--rounds 1] [--json out.json]

Reports numbers; does not pass or fail. Needs PostgreSQL on 127.0.0.1:5432 (tests/services.py).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import services  # noqa: E402
from service_process import ServiceProcess, db_value  # noqa: E402

KINDS = ("valid", "out_of_range", "unknown_metric", "bad_timestamp", "bad_sensor_id", "malformed", "empty_object")


def line(kind: str, i: int, base_ms: int) -> bytes:
    """Line ``i`` of a body of ``kind`` (sensor ids cycle over 1,000; timestamps one second apart per sensor)."""
    sensor = f"sensor-{i % 1000:04d}"
    ts = base_ms + (i // 1000) * 1000
    if kind == "valid":
        return b'{"sensor_id":"%s","metric":"temperature","ts":%d,"value":%.1f}' % (
            sensor.encode(), ts, -20 + (i * 7 % 800) / 10)
    if kind == "out_of_range":
        return b'{"sensor_id":"%s","metric":"temperature","ts":%d,"value":9999.5}' % (sensor.encode(), ts)
    if kind == "unknown_metric":
        return b'{"sensor_id":"%s","metric":"no_such_metric","ts":%d,"value":1.5}' % (sensor.encode(), ts)
    if kind == "bad_timestamp":
        return b'{"sensor_id":"%s","metric":"temperature","ts":"not a time","value":1.5}' % sensor.encode()
    if kind == "bad_sensor_id":
        return b'{"sensor_id":"","metric":"temperature","ts":%d,"value":1.5}' % ts
    if kind == "malformed":
        return b'{"sensor_id":"%s","metric":"temperature","ts":%d,"val' % (sensor.encode(), ts)
    if kind == "empty_object":
        return b"{}"
    raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")


def body(kind: str, n: int, base_ms: int) -> bytes:
    return gzip.compress(b"\n".join(line(kind, i, base_ms) for i in range(n)) + b"\n", compresslevel=1)


def start(src: str, work: Path, max_lines: int) -> tuple[ServiceProcess, str, str]:
    name, dsn = services.create_database(prefix="up_bench_reject")
    big = max_lines + 10
    config = {"database": {"dsn": dsn}, "detection": {"enabled": False},
              "api": {"max_body_bytes": 512 * 1024 * 1024, "build_defer_s": 0},
              "http_ingest": {"max_messages": big, "max_readings": big, "ack_timeout_s": 1800,
                              "max_decompressed_bytes": 1024 * 1024 * 1024}}
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(Path(src).resolve())
    try:
        svc = ServiceProcess(config, work).start(timeout=300)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    return svc, name, dsn


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends_cpu_s(dsn: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends connected to ``dsn``'s database."""
    pids = db_value(dsn, "SELECT array_agg(pid) FROM pg_stat_activity WHERE datname = current_database() "
                         "AND pid <> pg_backend_pid()") or []
    total = 0.0
    for pid in pids:
        try:
            total += cpu_s(pid)
        except OSError:
            pass
    return total


def counts(dsn: str) -> tuple[int, int]:
    return int(db_value(dsn, "SELECT count(*) FROM readings")), int(db_value(dsn, "SELECT count(*) FROM quarantine"))


def post(svc: ServiceProcess, key: str, data: bytes) -> tuple[int, float, dict | str]:
    t = time.perf_counter()
    r = httpx.post(svc.url + "/ingest", content=data, timeout=3600, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
    wall = time.perf_counter() - t
    if r.status_code != 200:
        return r.status_code, wall, r.text[:300]
    doc = r.json()
    return 200, wall, {"stored": doc["stored"], "rejected": len(doc["rejected"]),
                       "reasons": sorted({x["reason"] for x in doc["rejected"]})}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", action="append", required=True, help="NAME=PATH of a src tree (repeat: A, B)")
    ap.add_argument("--lines", type=int, nargs="+", default=[100_000])
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    trees = [s.split("=", 1) for s in args.src]
    work = Path(tempfile.mkdtemp(prefix="up-bench-reject-"))
    running: dict[str, tuple[ServiceProcess, str, str, str]] = {}
    results: list[dict] = []
    try:
        for label, src in trees:
            svc, name, dsn = start(src, work, max(args.lines))
            running[label] = (svc, name, dsn, svc.key("ingest"))
            print(f"{label}: {src} on {svc.url}", flush=True)
        step = 0
        for rnd in range(args.rounds):
            for n in args.lines:
                for kind in args.kinds:
                    step += 1
                    # every case its own hour of timestamps (valid lines are never duplicates)
                    base_ms = int(time.time() * 1000) - 20 * 86_400_000 + step * 3_600_000
                    data = body(kind, n, base_ms)
                    row: dict = {"round": rnd, "lines": n, "kind": kind, "gzip_bytes": len(data)}
                    for label, (svc, _, dsn, key) in running.items():
                        before = counts(dsn)
                        cpu0, pg0 = cpu_s(svc.proc.pid), backends_cpu_s(dsn)
                        status, wall, answer = post(svc, key, data)
                        cpu, pg = cpu_s(svc.proc.pid) - cpu0, backends_cpu_s(dsn) - pg0
                        after = counts(dsn)
                        stored, quarantined = after[0] - before[0], after[1] - before[1]
                        row[label] = {"status": status, "s": round(wall, 3), "lines_per_s": round(n / wall),
                                      "service_cpu_s": round(cpu, 2), "postgres_cpu_s": round(pg, 2),
                                      "stored": stored, "quarantined": quarantined, "answer": answer,
                                      "accounted": stored + quarantined == n}
                        print(f"{kind:>15} {n:>8} {label}: {status} {wall:7.2f} s {n / wall:>10,.0f} lines/s "
                              f"cpu {cpu:6.2f} s pg {pg:5.2f} s "
                              f"stored {stored} quarantined {quarantined} {answer if status != 200 else ''}",
                              flush=True)
                    if len(trees) == 2:
                        a, b = (row[t[0]]["s"] for t in trees)
                        ca, cb = (row[t[0]]["service_cpu_s"] + row[t[0]]["postgres_cpu_s"] for t in trees)
                        row["ratio"] = round(a / b, 2)
                        row["cpu_ratio"] = round(ca / cb, 2) if cb else None
                        print(f"{'':>15} {'':>8} ratio {trees[0][0]}/{trees[1][0]} wall {a / b:.2f} "
                              f"cpu (service + its backends) {ca / cb if cb else float('nan'):.2f}", flush=True)
                    results.append(row)
    finally:
        for svc, name, _, _ in running.values():
            svc.stop_quietly()
            services.drop_database(name)
    if args.json:
        args.json.write_text(json.dumps({"src": dict(trees), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
