#!/usr/bin/env python
"""First readings stored after a start against a database with a long history (issue 14 item 4).

A database of ``--readings`` readings of 1,000 registered sensors (one every 3,153.6 s through
2023, ``benchmarks/history.py``'s loader: every rollup level stored, as a database filled before
the level policy holds them) is made once as a template. Each run copies it (``CREATE DATABASE
.. TEMPLATE``), spawns `urbanpulse run` with an MQTT source on it, and publishes one reading per
millisecond cycling over the 1,000 sensors (readings of now). Timed from spawn, by polling
``readings`` from outside every 20 ms:

* ``first stored``: the first new reading committed;
* ``1,000 stored``: 1,000 new readings committed (every sensor's first batch after the start:
  detectors warmed from each series' last 128 readings, rollup levels decided from the
  registry's interval: these series keep only daily rollups, so their minute and hour rows go).

``before`` is ``--before REV`` (git archive, kernels compiled first), ``after`` this checkout;
interleaved. Figures, no pass/fail.

Run:  .venv/bin/python benchmarks/startup_history.py [--readings 2000000] [--repeat 2] [--before REV]
      [--keep-template]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

#: main before the rollup purge left the deciding batch's transaction
BEFORE_REV = "2faa4f3"


def template_name(readings: int) -> str:
    return f"up_bench_startup_hist_{readings}"

PUBLISHER = r'''
import json, sys, time
import paho.mqtt.client as mqtt
host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"hist-pub-{time.time_ns()}")
c.connect(host, port); c.loop_start()
i = 0
while True:
    c.publish(topic, json.dumps({"sensor_id": f"bench-{i % 1000:04d}", "metric": "pm2_5",
                                 "ts": int(time.time() * 1000), "value": 30.0 + i % 7}).encode(), qos=1)
    i += 1
    time.sleep(0.001)
'''


async def ensure_template(readings: int) -> str:
    import services
    from history import load

    template = template_name(readings)
    admin = await asyncpg.connect(services.PG_DSN)
    try:
        if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", template):
            return template
        await admin.execute(f"CREATE DATABASE {template}")
    finally:
        await admin.close()
    print(f"loading {readings:,} readings into {template}", file=sys.stderr, flush=True)
    await load(services.dsn_for(services.PG_DSN, template), readings)
    return template


async def copy_of_template(name: str, template: str) -> str:
    import services

    admin = await asyncpg.connect(services.PG_DSN)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    finally:
        await admin.close()
    return services.dsn_for(services.PG_DSN, name)


async def poll(dsn: str, since: float, proc: subprocess.Popen, log: Path, timeout: float = 600) -> dict[str, float]:
    """Seconds from ``since`` to the first and the 1,000th reading of today stored."""
    out: dict[str, float] = {}
    conn = await asyncpg.connect(dsn)
    try:
        while time.monotonic() - since < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"urbanpulse exited with {proc.returncode}; see {log}")
            n = await conn.fetchval("SELECT count(*) FROM readings WHERE ts > now() - interval '1 hour'")
            now = time.monotonic() - since
            if n > 0 and "first stored" not in out:
                out["first stored"] = now
            if n >= 1000:
                out["1,000 stored"] = now
                return out
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
    raise RuntimeError(f"not 1,000 readings within {timeout}s; see {log}")


def one_run(src: Path, work: Path, mosq, tag: str, template: str) -> dict[str, float]:  # noqa: ANN001
    import yaml

    import services

    name = f"up_bench_start14_hist_{uuid.uuid4().hex[:6]}"
    dsn = asyncio.run(copy_of_template(name, template))
    topic = f"hist/{uuid.uuid4().hex[:6]}"
    pub = subprocess.Popen([sys.executable, "-c", PUBLISHER, mosq.host, str(mosq.port), topic])
    cfg = work / f"{tag}.yaml"
    cfg.write_text(yaml.safe_dump({
        "database": {"dsn": dsn, "storage_mode": "postgres"}, "log_level": "INFO",
        "api": {"enabled": True, "host": "127.0.0.1", "port": services.free_port()},
        "mqtt": {"enabled": True, "host": mosq.host, "port": mosq.port, "topics": [topic],
                 "client_id": f"hist-{uuid.uuid4().hex[:6]}"}}))
    log = work / f"{tag}.log"
    proc = None
    try:
        with open(log, "ab") as f:
            t = time.monotonic()
            proc = subprocess.Popen([sys.executable, "-m", "urbanpulse.cli", "run", "--config", str(cfg)],
                                    env={**__import__("os").environ, "PYTHONPATH": str(src)}, stdout=f,
                                    stderr=subprocess.STDOUT, cwd=work)
        return asyncio.run(poll(dsn, t, proc, log))
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        pub.kill()
        pub.wait()
        services.drop_database(name)


def main() -> None:
    import services
    from startup import source_tree

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readings", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--before", default=BEFORE_REV)
    ap.add_argument("--keep-template", action="store_true", help="keep the template database for the next run")
    args = ap.parse_args()
    template = asyncio.run(ensure_template(args.readings))
    tmp = Path(tempfile.mkdtemp(prefix="up-bench-starthist-"))
    (tmp / "before").mkdir()
    trees = {"before": source_tree(args.before, tmp / "before"), "after": REPO / "src"}
    mosq = services.start_mosquitto(tmp / "mosquitto")
    rows: dict[str, list[float]] = {}
    try:
        for k in range(args.repeat):
            for variant in ("before", "after"):
                got = one_run(trees[variant], tmp, mosq, f"{variant}-{k}", template)
                for what, v in got.items():
                    rows.setdefault(f"{what} ({variant})", []).append(v)
                print(f"  {variant} run {k + 1}: " + ", ".join(f"{w} {v:.2f}" for w, v in got.items()),
                      file=sys.stderr, flush=True)
    finally:
        mosq.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if not args.keep_template:
            services.drop_database(template)
    print(f"{args.readings:,} readings of history, median of {args.repeat} (min-max), seconds from spawn")
    print("\n| `urbanpulse run` with an MQTT source | seconds |\n|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f}) |")


if __name__ == "__main__":
    main()
