#!/usr/bin/env python
"""Issue 14's benchmark: one run, everything side by side, on one pre-produced Kafka topic.

One topic (``--readings``, default 1,000,000 readings, 2,000 series, 1 % with an out-of-range
value, one reading per message, 4 partitions) is produced once on a private Tansu; then, each
consumer with its own group and the tables emptied in between:

* ``all on``      - `urbanpulse run` with every detector, windows, alerts and rollups;
* ``no rollups``  - the same with ``database.rollups.enabled: false`` (rollups cost = 1 - all / this);
* ``ingest only`` - detection and rollups off (the ingest path alone);
* ``ceiling``     - asyncpg binary COPY of the same valid rows into the same ``readings`` table,
                    on two connections (the service writes with two) and on one;
* ``bytewax``     - a Bytewax 0.21 dataflow of the same shape (benchmarks/bytewax_flow.py: Kafka
                    JSON -> filter -> idempotent insert into the same tables + a one-minute mean
                    per series) with one and with two processes.

The service phases run in mirrored order (all, no rollups, ingest only, [Bytewax],
ingest only, no rollups, all) so drift on the shared VM cancels in the ratios. Each figure is
readings/s sustained (first stored batch to the last) and from process spawn (spawn to the last
reading stored). The ratios the issue's targets are stated in are printed and written to JSON.

Bytewax runs in its own venv (``--bytewax-python``, default /tmp/bytewax-venv/bin/python);
without it that part is skipped with a message saying how to create it.

``--before-src DIR`` runs each service configuration also from another source tree (main's
``src/``, extracted with ``git archive``), interleaved with this one's, so a before/after pair
shares the run's conditions; ``--bytewax-processes 1`` and ``--skip-ceiling`` shorten a run to
fit a quiet slot.

Run:  .venv/bin/python benchmarks/throughput.py [--readings 1000000] [--json OUT]
      [--configs all] [--before-src /tmp/base/src] [--bytewax-processes 1] [--skip-ceiling]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import analytics as ab  # noqa: E402 - the analytics benchmark's service phases (also sets sys.path)
import ingest as ib  # noqa: E402 - topic production, Tansu, the readings' rows

DEFAULT_BYTEWAX_PY = Path("/tmp/bytewax-venv/bin/python")
BYTEWAX_VENV_HINT = ("python3 -m venv /tmp/bytewax-venv && /tmp/bytewax-venv/bin/pip install "
                     "'bytewax==0.21.*' confluent-kafka 'psycopg[binary]' orjson")
SERVICE_CONFIGS = {"all": "all on", "no-rollups": "no rollups", "off": "ingest only"}
TARGETS = {"sustained_all_on": 250_000, "rollups_cost": 0.15, "from_spawn_vs_bytewax": 5.0}


# ----------------------------------------------------------------------------------------------
# ceiling: binary COPY on one and on two connections


def copy_ceiling(dsn: str, records: list[tuple], connections: int, per_tx: int) -> float:
    """Rows/s of ``records`` COPY'd into ``readings``, ``per_tx`` rows per transaction, the
    transactions dealt round-robin to ``connections`` concurrent connections."""
    import asyncpg

    async def go() -> float:
        conns = [await asyncpg.connect(dsn) for _ in range(connections)]
        try:
            await conns[0].execute("TRUNCATE readings")
            await conns[0].execute("CHECKPOINT")
            chunks = [records[i:i + per_tx] for i in range(0, len(records), per_tx)]

            async def writer(k: int) -> None:
                for chunk in chunks[k::connections]:
                    async with conns[k].transaction():
                        await conns[k].copy_records_to_table("readings", records=chunk, columns=ib.CEILING_COLUMNS)

            t0 = time.perf_counter()
            await asyncio.gather(*(writer(k) for k in range(connections)))
            seconds = time.perf_counter() - t0
            stored = await conns[0].fetchval("SELECT count(*) FROM readings")
            if stored != len(records):
                raise RuntimeError(f"ceiling stored {stored} of {len(records)} rows")
            await conns[0].execute("TRUNCATE readings")
            return len(records) / seconds
        finally:
            for c in conns:
                await c.close()
    return asyncio.run(go())


def measure_ceiling(ctx: ib.Ctx, records: list[tuple], per_tx: int, label: str) -> dict[str, float]:
    out = {f"{k}_connection{'s' if k > 1 else ''}": copy_ceiling(ctx.dsn, records, k, per_tx) for k in (2, 1)}
    ib.log(f"ceiling ({label}): {out['2_connections']:,.0f} rows/s on two connections, "
           f"{out['1_connection']:,.0f} on one ({per_tx:,} rows per transaction)")
    return out


# ----------------------------------------------------------------------------------------------
# Bytewax


def expected_buckets(records: list[tuple]) -> int:
    """(series, minute) buckets holding at least one stored reading: the peer's mean rows."""
    return len({(r[0], r[1].replace(second=0, microsecond=0)) for r in records})


def _bytewax_tables(dsn: str) -> None:
    async def go(conn):  # noqa: ANN001
        await conn.execute("CREATE TABLE IF NOT EXISTS bw_mean_1m (series_id int4 NOT NULL, bucket timestamptz "
                           "NOT NULL, mean float8 NOT NULL, count int8 NOT NULL, PRIMARY KEY (series_id, bucket))")
        await conn.execute("TRUNCATE bw_mean_1m")
    ib.db_call(dsn, go)


def _bytewax_check(dsn: str) -> dict[str, Any]:
    """Rows stored, and the peer's means against a recomputation from the stored readings."""
    async def go(conn):  # noqa: ANN001
        return {"readings": await conn.fetchval("SELECT count(*) FROM readings"),
                "mean_rows": await conn.fetchval("SELECT count(*) FROM bw_mean_1m"),
                "mean_readings": await conn.fetchval("SELECT coalesce(sum(count), 0) FROM bw_mean_1m"),
                "mean_max_abs_error": await conn.fetchval(
                    "SELECT max(abs(m.mean - r.mean)) FROM bw_mean_1m m JOIN (SELECT series_id, "
                    "date_trunc('minute', ts) AS bucket, avg(value) AS mean FROM readings GROUP BY 1, 2) r "
                    "USING (series_id, bucket)")}
    return ib.db_call(dsn, go)


def bytewax_phase(ctx: ib.Ctx, topic: str, python: Path, processes: int, expected: int,
                  buckets: int) -> dict[str, Any]:
    from services import free_port

    from urbanpulse.quality.catalogue import MetricCatalogue

    ab.reset_all(ctx.dsn)
    _bytewax_tables(ctx.dsn)
    # the service's own catalogue ranges, so the peer drops exactly what the service quarantines
    ranges = {m.name: [m.min, m.max] for m in MetricCatalogue.load().specs}
    out_dir = Path(tempfile.mkdtemp(prefix=f"bytewax-{processes}p-", dir=ctx.workdir))
    spec = {"brokers": [ctx.tansu.bootstrap], "topic": topic, "dsn": ctx.dsn, "out_dir": str(out_dir),
            "group": f"bench-bytewax-{processes}p-{uuid.uuid4().hex[:6]}", "ranges": ranges,
            "max_future_ms": 300_000, "max_age_ms": 30 * 86_400_000, "batch_size": ctx.args.bytewax_batch}
    env = {**os.environ, "UP_BW_SPEC": json.dumps(spec), "PYTHONPATH": str(HERE)}
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    ib.log(f"bytewax, {processes} process(es): draining {ctx.args.readings:,} readings")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t_spawn = time.time()
    procs = []
    for k in range(processes):
        cmd = [str(python), "-m", "bytewax.run", "bytewax_flow:flow", "-w", "1"]
        if processes > 1:
            cmd += ["-i", str(k), "-a", addresses]
        log = open(out_dir / f"process-{k}.log", "wb")  # noqa: SIM115 - closed below
        procs.append((subprocess.Popen(cmd, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    for p, _ in procs:
        ctx.cleanup.callback(lambda p=p: p.poll() is None and (p.kill(), p.wait(10)))
    timeout = max(600, ctx.args.readings / 1000)
    codes = [p.wait(timeout) for p, _ in procs]
    t_exit = time.time()
    for _, log in procs:
        log.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if any(codes):
        tail = (out_dir / "process-0.log").read_text()[-3000:]
        raise RuntimeError(f"bytewax exited with {codes}; logs in {out_dir}\n{tail}")
    commits: dict[str, list[tuple[float, int]]] = {"readings": [], "means": []}
    for f in out_dir.glob("*.json"):
        d = json.loads(f.read_text())
        commits[d["kind"]] += [tuple(c) for c in d["commits"]]
    check = _bytewax_check(ctx.dsn)
    if check["readings"] != expected:
        raise RuntimeError(f"bytewax stored {check}, expected {expected} readings")
    check["means_complete"] = check["mean_rows"] == buckets and check["mean_readings"] == expected
    if not check["means_complete"]:
        ib.log(f"bytewax: means incomplete ({check}; expected {buckets} rows over {expected} readings): "
               f"readings counted late and dropped from their windows")
    rows = sorted(commits["readings"])
    t_first, c_first = rows[0]
    t_last = max(t for t, _ in rows)
    t_done = max(t_last, max(t for t, _ in commits["means"]))
    res = {"processes": processes, "rate": (expected - c_first) / (t_last - t_first), "window_s": t_last - t_first,
           "first_stored_s": round(t_first - t_spawn, 2), "from_spawn_s": round(t_done - t_spawn, 2),
           "from_spawn_rate": expected / (t_done - t_spawn), "exit_s": round(t_exit - t_spawn, 2),
           "cpu_s": round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 2),
           "batches": len(rows), "db": check, "logs": str(out_dir), "loadavg_1m": round(os.getloadavg()[0], 2)}
    ib.log(f"bytewax, {processes} process(es): {res['rate']:,.0f} readings/s sustained, "
           f"{res['from_spawn_rate']:,.0f} from spawn ({res['from_spawn_s']} s), means checked "
           f"(max error {check['mean_max_abs_error']})")
    return res


# ----------------------------------------------------------------------------------------------
# the run


def service_phase(ctx: ib.Ctx, topic: str, config: str, label: str, tree: Path | None = None) -> dict[str, Any]:
    """One service configuration drained; ``tree``: run the service from this ``src/`` instead
    (``--before-src``: main's code beside this branch's, in the same run)."""
    saved = os.environ.get("PYTHONPATH")
    if tree is not None:
        os.environ["PYTHONPATH"] = str(tree)  # the service process inherits it (service_process.py)
    try:
        res = ab.kafka_phase(ctx, topic, config != "off", label, config,
                             kafka_extra={"assignment": ctx.args.kafka_assignment})
    finally:
        if tree is not None:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
    res["kafka_assignment"] = ctx.args.kafka_assignment
    res["tree"] = "before" if tree is not None else "after"
    res["loadavg_1m"] = round(os.getloadavg()[0], 2)
    res["rollup_stats"] = rollup_stats(res.get("log"))
    cpu = [res.get("service_cpu_at_stored_s"), *res["cpu_s"].values()]
    if all(c is not None for c in cpu):
        res["cpu_s_per_million"] = round(1e6 * sum(cpu) / ctx.stored, 3)
    return res


def rollup_stats(log_path: str | None) -> dict[str, Any] | None:
    """The deferred rollups' own account (storage/rollup_buffer.py ``RollupStats``), logged at the
    service's stop: flushes, rows merged per level, where the seconds went."""
    if not log_path or not Path(log_path).exists():
        return None
    found = None
    for line in Path(log_path).read_text(errors="replace").splitlines():
        if "rollup stats: " in line:
            found = line.split("rollup stats: ", 1)[1]
    try:
        return json.loads(found) if found else None
    except ValueError:
        return None


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    k = len(xs) // 2
    return xs[k] if len(xs) % 2 else (xs[k - 1] + xs[k]) / 2


def rollups_cost(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """What the rollups cost, from pairs: each round's ``all`` phase against the ``no-rollups``
    phase run next to it (ABBA order), so drift and a busy moment fall on both sides of a pair.

    ``rollups_cost`` = the median over pairs of 1 - all / no-rollups (sustained rates): the
    headline, less moved by one disturbed phase than a ratio of means. Beside it the CPU
    seconds per million readings stored (service + PostgreSQL + broker, spawn to the last
    reading stored), which on a CPU-bound 2-core box varies much less than a rate over a
    two-second drain: ``rollups_cpu_cost`` = median over pairs of all / no-rollups - 1."""
    after = [p for p in phases if p.get("tree", "after") == "after"]
    pairs = []
    for rnd in sorted({p.get("round", 0) for p in after}):
        a = [p for p in after if p.get("round", 0) == rnd and p["config"] == "all"]
        b = [p for p in after if p.get("round", 0) == rnd and p["config"] == "no-rollups"]
        pairs += list(zip(a, b))
    if not pairs:
        return {}
    rate = [1 - a["rate"] / b["rate"] for a, b in pairs]
    out: dict[str, Any] = {"rollups_cost": _median(rate), "rollups_cost_pairs": [round(x, 3) for x in rate]}
    cpu = [(a["cpu_s_per_million"], b["cpu_s_per_million"]) for a, b in pairs
           if a.get("cpu_s_per_million") and b.get("cpu_s_per_million")]
    if cpu:
        out["cpu_s_per_million_all"] = _median([a for a, _ in cpu])
        out["cpu_s_per_million_no_rollups"] = _median([b for _, b in cpu])
        out["rollups_cpu_cost"] = _median([a / b - 1 for a, b in cpu])
        out["rollups_cpu_cost_pairs"] = [round(a / b - 1, 3) for a, b in cpu]
    return out


def summarise(r: dict[str, Any]) -> dict[str, Any]:
    """Means per configuration and the ratios the issue's targets are stated in."""
    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    def by_config(tree: str) -> dict[str, list[dict[str, Any]]]:
        return {c: [p for p in r["service_phases"] if p["config"] == c and p.get("tree", "after") == tree]
                for c in SERVICE_CONFIGS}

    def figures(phases: list[dict[str, Any]]) -> dict[str, Any]:
        return {"sustained": mean([p["rate"] for p in phases]),
                "from_spawn": mean([p["from_spawn_rate"] for p in phases]),
                "first_stored_s": mean([p["first_stored_s"] for p in phases]),
                "from_spawn_s": mean([p["from_spawn_s"] for p in phases]),
                "runs_sustained": [round(p["rate"]) for p in phases],
                "runs_from_spawn": [round(p["from_spawn_rate"]) for p in phases],
                "runs_from_spawn_s": [p["from_spawn_s"] for p in phases]}

    s: dict[str, Any] = {}
    for c, phases in by_config("after").items():
        if phases:
            s[c] = figures(phases)
    before = {c: figures(phases) for c, phases in by_config("before").items() if phases}
    if before:
        s["before"] = before
    ceil = r["ceiling"]
    s["ceiling_2_connections"] = mean([c["2_connections"] for c in ceil]) if ceil else float("nan")
    s["ceiling_1_connection"] = mean([c["1_connection"] for c in ceil]) if ceil else float("nan")
    ratios: dict[str, Any] = {}
    if "all" in s and "no-rollups" in s:
        ratios.update(rollups_cost(r["service_phases"]))
        # the figure before roll21: one minus the ratio of the configurations' mean rates
        ratios["rollups_cost_of_means"] = 1 - s["all"]["sustained"] / s["no-rollups"]["sustained"]
    if "all" in s and "off" in s:
        ratios["analytics_cost"] = 1 - s["all"]["sustained"] / s["off"]["sustained"]
    for c in ("all", "off"):
        if c in s and ceil:
            ratios[f"{c}_vs_ceiling"] = s[c]["sustained"] / s["ceiling_2_connections"]
    bw = r.get("bytewax") or {}
    if bw and "all" in s:
        best = max(bw.values(), key=lambda b: b["from_spawn_rate"])
        ratios["from_spawn_vs_bytewax"] = s["all"]["from_spawn"] / best["from_spawn_rate"]
        ratios["from_spawn_vs_bytewax_best_is"] = f"{best['processes']} process(es)"
        if "all" in before:
            ratios["before_from_spawn_vs_bytewax"] = before["all"]["from_spawn"] / best["from_spawn_rate"]
        for k, b in bw.items():
            ratios[f"from_spawn_vs_bytewax_{k}"] = s["all"]["from_spawn"] / b["from_spawn_rate"]
            ratios[f"sustained_vs_bytewax_{k}"] = s["all"]["sustained"] / b["rate"]
    s["ratios"] = ratios
    targets = {}
    if "all" in s:
        targets["sustained_all_on"] = {"target": ">= 250,000 readings/s", "value": round(s["all"]["sustained"]),
                                       "met": s["all"]["sustained"] >= TARGETS["sustained_all_on"]}
    if "rollups_cost" in ratios:
        targets["rollups_cost"] = {"target": "<= 15 % (median over all/no-rollups pairs)",
                                   "value": round(ratios["rollups_cost"], 3),
                                   "met": ratios["rollups_cost"] <= TARGETS["rollups_cost"]}
    if "from_spawn_vs_bytewax" in ratios:
        targets["from_spawn_vs_bytewax"] = {"target": ">= 5x the faster Bytewax, from process start",
                                            "value": round(ratios["from_spawn_vs_bytewax"], 2),
                                            "met": ratios["from_spawn_vs_bytewax"] >= TARGETS["from_spawn_vs_bytewax"]}
    s["targets"] = targets
    return s


def print_table(r: dict[str, Any]) -> None:
    s = r["summary"]
    lines = [f"issue 14 throughput  {r['date']}  commit {r['commit']}  readings={r['readings']:,} "
             f"({r['stored']:,} valid, {r['series']:,} series)  load {r['loadavg']}", "",
             f"{'path':<34}{'sustained/s':>14}{'from spawn/s':>14}{'first stored':>14}   runs (sustained)", "-" * 110]
    for c, name in SERVICE_CONFIGS.items():
        if c in s:
            x = s[c]
            lines.append(f"{'urbanpulse, ' + name:<34}{x['sustained']:>14,.0f}{x['from_spawn']:>14,.0f}"
                         f"{x['first_stored_s']:>13.1f}s   {x['runs_sustained']}")
    for c, x in s.get("before", {}).items():
        lines.append(f"{'before: ' + SERVICE_CONFIGS[c]:<34}{x['sustained']:>14,.0f}{x['from_spawn']:>14,.0f}"
                     f"{x['first_stored_s']:>13.1f}s   {x['runs_sustained']} done {x['runs_from_spawn_s']} s")
    for c in SERVICE_CONFIGS:
        if c in s:
            lines.append(f"{'  (after) ' + SERVICE_CONFIGS[c] + ' done after spawn':<34}{s[c]['runs_from_spawn_s']} s")
    lines.append(f"{'binary COPY, 2 connections':<34}{s['ceiling_2_connections']:>14,.0f}")
    lines.append(f"{'binary COPY, 1 connection':<34}{s['ceiling_1_connection']:>14,.0f}")
    for k, b in (r.get("bytewax") or {}).items():
        lines.append(f"{'Bytewax 0.21, ' + k:<34}{b['rate']:>14,.0f}{b['from_spawn_rate']:>14,.0f}"
                     f"{b['first_stored_s']:>13.1f}s   done {b['from_spawn_s']} s after spawn")
    if r.get("bytewax_skipped"):
        lines.append(f"Bytewax: skipped ({r['bytewax_skipped']})")
    for p in r["service_phases"]:
        rs = p.get("rollup_stats") or {}
        lines.append(f"  {p['config']:<11} round {p.get('round', 0) + 1} {p.get('tree', 'after'):<6} "
                     f"{p['rate']:>9,.0f}/s  cpu/M {p.get('cpu_s_per_million', float('nan')):.2f} s "
                     f"(service {p.get('service_cpu_at_stored_s')}, {p['cpu_s']})"
                     + (f"  rollups: {rs.get('flushes')} flushes {rs.get('flush_s')} s, merge {rs.get('merge_s')} s, "
                        f"prep {rs.get('prep_s')} s, partials {rs.get('partials_s')} s, marks {rs.get('marks')} "
                        f"{rs.get('mark_s')} s, rows {rs.get('rows_1m')}/{rs.get('rows_1h')}/{rs.get('rows_1d')}"
                        if rs else ""))
    lines += ["", "ratios: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in s["ratios"].items())]
    for k, t in s["targets"].items():
        lines.append(f"target {k}: {t['target']}: {t['value']} -> {'MET' if t['met'] else 'NOT MET'}")
    print("\n".join(lines))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--readings", type=int, default=1_000_000, help="readings on the topic (default 1000000)")
    p.add_argument("--series", type=int, default=2000, help="series (default 2000)")
    p.add_argument("--invalid-every", type=int, default=100, help="one reading in N is out of range (default 100: 1 %%)")
    p.add_argument("--repeats", type=int, default=2,
                   help="rounds of the service phases, each round in the mirror order of the one before "
                        "(ABBA..); Bytewax after the first (default 2; 1: once each). The rollups' cost is "
                        "the median over the rounds' all/no-rollups pairs")
    p.add_argument("--ceiling-batch", type=int, default=20_000,
                   help="rows per COPY transaction (default 20000 = ingest.batch_max_readings)")
    p.add_argument("--bytewax-python", type=Path, default=DEFAULT_BYTEWAX_PY, help="python of the Bytewax venv")
    p.add_argument("--bytewax-batch", type=int, default=5000, help="KafkaSource batch_size (default 5000)")
    p.add_argument("--kafka-assignment", choices=("manual", "group"), default="manual",
                   help="the service's kafka.assignment (default manual: one worker takes every partition without "
                        "a group join, as Bytewax's KafkaSource does; 'group' was the setting before 2026-12-01)")
    p.add_argument("--fixed-poll", action="store_true",
                   help="poll /metrics at 20 Hz throughout the service phases (before 2026-12-01), not thinned")
    p.add_argument("--configs", default="all,no-rollups,off",
                   help=f"service configurations to run, comma-separated, of {','.join(SERVICE_CONFIGS)} (default all)")
    p.add_argument("--skip-bytewax", action="store_true")
    p.add_argument("--bytewax-processes", default="2,1",
                   help="Bytewax runs, comma-separated process counts (default 2,1; 1 alone for a shorter run)")
    p.add_argument("--before-src", type=Path, default=None,
                   help="also run each service configuration from this src/ (e.g. main's, extracted with git archive, "
                        "its kernels built), interleaved with this tree's: before, after[, Bytewax, after, before]")
    p.add_argument("--skip-ceiling", action="store_true", help="leave out the binary COPY ceiling (a shorter run)")
    p.add_argument("--compile-bytecode", action="store_true",
                   help="compile each service tree's modules to bytecode first (python -m compileall), as `pip "
                        "install` does for an installed service; without it, a shell with PYTHONDONTWRITEBYTECODE=1 "
                        "(this VM's) compiles every urbanpulse module again at each service start")
    p.add_argument("--pg-dsn", default=None, help="server for the throw-away database")
    p.add_argument("--json", metavar="OUT", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    unknown = set(args.configs.split(",")) - set(SERVICE_CONFIGS) - {""}
    if unknown:
        p.error(f"--configs: unknown {sorted(unknown)}; choose from {sorted(SERVICE_CONFIGS)}")
    return args


def compile_trees(extra: list[Path]) -> None:
    """Bytecode for the service trees the phases run (``--compile-bytecode``): this tree's
    ``urbanpulse`` package and the ``--before-src`` one, as an installed service has it."""
    import urbanpulse

    for tree in [Path(urbanpulse.__file__).resolve().parent.parent, *extra]:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree)], check=True, stdout=subprocess.DEVNULL)
        ib.log(f"compiled {tree} to bytecode")


def _commit() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("+changes" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.kafka_readings_per_message = 1
    from services import PG_DSN, create_database, drop_database, start_tansu

    bytewax_skipped = None
    if args.skip_bytewax:
        bytewax_skipped = "--skip-bytewax"
    elif not args.bytewax_python.exists():
        bytewax_skipped = f"no Bytewax venv at {args.bytewax_python}; create it with: {BYTEWAX_VENV_HINT}"
        ib.log(f"Bytewax part skipped: {bytewax_skipped}")
    base_dsn = args.pg_dsn or PG_DSN
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stamp, workdir = ib.results_workdir("throughput")
    started = time.time()
    data = {"series": args.series, "invalid_every": args.invalid_every}
    ib.configure_data(args.series, args.invalid_every)  # the producer workers get it through their spec
    n = args.readings
    stored = n - ib.invalid_count(n)
    r: dict[str, Any] = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "commit": _commit(),
                         "readings": n, "stored": stored, **data, "loadavg_start": os.getloadavg(),
                         "command": " ".join([Path(sys.executable).name, *sys.argv]),
                         "compile_bytecode": args.compile_bytecode}
    with contextlib.ExitStack() as cleanup:
        ctx = ib.Ctx(args, workdir, cleanup)
        ctx.base_ms = ib.default_base_ms(n)
        db_name, ctx.dsn = create_database(base_dsn, prefix="up_bench14")
        cleanup.callback(lambda: drop_database(db_name, base_dsn))
        r["machine"] = ib.machine_info(ctx.dsn)
        ctx.tansu = start_tansu(workdir / "tansu")
        cleanup.callback(ctx.tansu.stop)
        ib.prepare_schema(ctx.dsn, n, ctx.base_ms)
        if args.compile_bytecode:
            compile_trees([args.before_src] if args.before_src else [])
        ab._compile_kernels()  # "compiled kernels cached", as the targets assume
        topic = f"bench.throughput.{uuid.uuid4().hex[:6]}"
        r["produce"] = ib.produce_kafka_backlog(ctx, topic)
        records = ib.ceiling_records(n, ctx.base_ms)
        buckets = expected_buckets(records)
        r["ceiling"] = [] if args.skip_ceiling else [measure_ceiling(ctx, records, args.ceiling_batch, "before")]
        order = [c for c in args.configs.split(",") if c]
        trees: list[Path | None] = [args.before_src.resolve(), None] if args.before_src else [None]
        ctx.stored = stored
        phases = []
        for rnd in range(max(1, args.repeats)):
            forward = rnd % 2 == 0  # mirrored rounds: drift cancels in the pairs
            for c in (order if forward else reversed(order)):
                for tree in (trees if forward else list(reversed(trees))):
                    tag = f"{c}-{rnd + 1}" + ("-before" if tree is not None else "")
                    phases.append({"config": c, "round": rnd, **service_phase(ctx, topic, c, tag, tree)})
            if rnd == 0:
                if not bytewax_skipped:
                    counts = [int(x) for x in args.bytewax_processes.split(",") if x]
                    r["bytewax"] = {f"{k} process{'es' if k > 1 else ''}":
                                    bytewax_phase(ctx, topic, args.bytewax_python, k, stored, buckets)
                                    for k in counts}
                else:
                    r["bytewax_skipped"] = bytewax_skipped
        r["service_phases"] = phases
        if not args.skip_ceiling:
            r["ceiling"].append(measure_ceiling(ctx, records, args.ceiling_batch, "after"))
    r["loadavg_end"] = os.getloadavg()
    r["loadavg"] = f"{r['loadavg_start'][0]:.1f} -> {r['loadavg_end'][0]:.1f} (1 min)"
    r["summary"] = summarise(r)
    r["wall_s"] = round(time.time() - started, 1)
    print_table(r)
    ib.log(f"results: {ib.write_results(r, 'throughput', stamp, args.json)} (wall {r['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
