#!/usr/bin/env python
"""Memory per series, accounted in full (issue 14 item 5), before and after, in one run.

Two measurements, each in fresh Python processes of two source trees: the current one
(``after``) and ``--before REV`` (default: main before issue 14 item 5's changes, extracted with
``git archive`` and its kernels compiled first, as benchmarks/startup.py does).

1. **Baseline**: RSS of a process that has imported, step by step, what `urbanpulse run`
   imports (interpreter, numpy, asyncpg, the configuration, the service, the compiled kernels
   (built ahead of time, or Numba with its target context), the HTTP API) before any series
   arrives.
2. **Per series**: against a throw-away database, the service's per-series holders
   (``ReadingStore`` with its series registry and rollup writer, ``StreamAnalytics`` with
   windows, detectors, slot map and alert state) are warmed up on 100 series, then
   ``--series`` more series arrive, ``--readings`` readings each, in 20,000-reading batches
   through the same calls the pipeline makes (series ids, analysis, write with the analysis in
   the transaction). Reported: RSS growth per series (after ``gc.collect()``), the bytes of every
   numpy array each holder owns divided by the series count (so growth slack is in it), and,
   with tracemalloc in a separate run (``--trace``), what it attributes to each source file.

Run:  .venv/bin/python benchmarks/series_memory.py [--series 100000] [--readings 3] [--trace]
      [--before REV] [--only after]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

#: main before this round of issue 14 item 5 (the "before" column; 558675b before the first round)
BEFORE_REV = "ce151dc"

BASELINE_CHILD = r'''
import gc, json, sys, psutil
p = psutil.Process()
steps = []
last = None
def mark(name):
    global last
    gc.collect()
    now = p.memory_info().rss
    steps.append((name, now, now - (last if last is not None else now)))
    last = now
mark("interpreter")
import numpy  # noqa: E401
mark("numpy")
import asyncpg
mark("asyncpg")
import urbanpulse.config
mark("configuration (pydantic, settings)")
import urbanpulse.cli, urbanpulse.runner, urbanpulse.service, urbanpulse.connectors.kafka, urbanpulse.connectors.mqtt
mark("service modules")
from urbanpulse.analytics import compile_kernels
compile_kernels()
mark("kernels loaded (built ahead of time, or Numba + its target context)")
import urbanpulse.api.app, uvicorn
mark("HTTP API (fastapi, routes, uvicorn)")
print(json.dumps({"steps": steps, "pyarrow": "pyarrow" in sys.modules, "httpx": "httpx" in sys.modules,
                  "numba": "numba" in sys.modules}))
'''


def child_env(src: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(src))


def baseline(src: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", BASELINE_CHILD], env=child_env(src), capture_output=True, text=True,
                         check=True, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


def per_series(src: Path, series: int, readings: int, trace: bool) -> dict:
    args = [sys.executable, __file__, "--child", "--series", str(series), "--readings", str(readings)]
    if trace:
        args.append("--trace")
    out = subprocess.run(args, env=child_env(src), capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the child: one tree's holders, measured in this process -------------------------------------

def _arrays_nbytes(obj: object, seen: set[int], depth: int = 2) -> int:
    """Bytes of the numpy arrays an object holds (attributes, and theirs, ``depth`` levels), each
    array counted once across calls sharing ``seen`` (the slot map is shared by several holders)."""
    import numpy as np

    total = 0
    names = list(getattr(obj, "__dict__", {}))
    names += [n for c in type(obj).__mro__ for n in getattr(c, "__slots__", ())]
    for name in set(names):
        v = getattr(obj, name, None)
        if isinstance(v, np.ndarray):
            if id(v) not in seen:
                seen.add(id(v))
                total += v.nbytes
        elif depth > 1 and v is not None and not isinstance(v, (str, bytes, int, float, bool, dict, list, tuple)) \
                and (hasattr(v, "__dict__") or hasattr(v, "__slots__")) and type(v).__module__.startswith("urbanpulse"):
            total += _arrays_nbytes(v, seen, depth - 1)
    return total


async def _child(series: int, readings: int, trace: bool) -> dict:
    import gc
    import inspect
    import time
    import tracemalloc
    from collections import defaultdict

    import asyncpg
    import numpy as np
    import psutil

    import services
    from urbanpulse.analytics import StreamAnalytics
    from urbanpulse.config import load_settings
    from urbanpulse.model import ReadingColumns
    from urbanpulse.storage.migrations import migrate
    from urbanpulse.storage.partitions import MonthlyPartitions
    from urbanpulse.storage.rollups import RollupPolicy
    from urbanpulse.storage.writer import ReadingStore, prepare_connection

    def rss() -> int:
        gc.collect()
        return psutil.Process().memory_info().rss

    def batches(first: int, n_series: int) -> list[ReadingColumns]:
        base = int((time.time() - 7200) * 1e6)
        sid = np.tile(np.arange(first, first + n_series), readings)
        ts = base + np.repeat(np.arange(readings), n_series).astype(np.int64) * 10_000_000
        rng = np.random.default_rng(0)
        out = []
        for idx in np.array_split(np.arange(len(sid)), max(1, len(sid) // 20_000)):
            n = len(idx)
            out.append(ReadingColumns(
                [f"sensor-{s:06d}" for s in sid[idx]], ["temperature"] * n, ts[idx], 20 + rng.normal(0, 1, n),
                np.full(n, np.nan), np.full(n, np.nan), [None] * n, np.zeros(n, np.int32),
                np.full(n, -1, np.int32), np.zeros(n, bool), np.zeros(n, np.int16)))
        return out

    async def feed(a: StreamAnalytics, store: ReadingStore, data: list[ReadingColumns]) -> None:
        for rc in data:
            sid = await store.series.ids_for(store.pool, rc.sensor_id, rc.metric)
            prepared = await a.ready(await a.prepare("kafka", rc, sid))
            await store.write(rc, [], "kafka", series_ids=sid, in_transaction=lambda c: a.write(c, prepared))
            if prepared is not None:
                a.committed(prepared)

    try:  # as `urbanpulse run` does first thing (the before tree has no such call)
        from urbanpulse.capacity import keep_large_arrays_off_the_heap
    except ImportError:
        pass
    else:
        keep_large_arrays_off_the_heap()
    try:  # and keeps a batch's freed memory for the next (lat19; older trees have no such call)
        from urbanpulse.config import IngestSettings
        from urbanpulse.heap_reuse import keep_freed_heap
    except ImportError:
        pass
    else:
        keep_freed_heap(IngestSettings().heap_keep_mb)
    name, dsn = services.create_database(services.PG_DSN, prefix="up_bench_memory_startup")
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn, "postgres")
        await conn.close()
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=3, init=prepare_connection)
        store = ReadingStore(pool, MonthlyPartitions())
        # built as the service builds it (service.py), with what the tree's StreamAnalytics takes
        wiring = {"created_here": "created_here", "sensors_of": "sensors_of"}
        takes = inspect.signature(StreamAnalytics).parameters
        if "created_here" in takes:
            store.series.keep_created()
        a = StreamAnalytics(load_settings(None, database={"dsn": dsn}), pool,
                            **{k: getattr(store.series, v) for k, v in wiring.items() if k in takes})
        await a.start()
        store.rollups.policy = RollupPolicy(10, 8)
        await feed(a, store, batches(10**7, 100))  # kernels loaded, buffers sized
        before = rss()
        if trace:
            tracemalloc.start(1)
            snap0 = tracemalloc.take_snapshot()
        for k in range(0, series, 20_000):  # built batch by batch: the test data is not counted
            await feed(a, store, batches(k, min(20_000, series - k)))
        gc.collect()
        result: dict = {}
        if trace:
            snap1 = tracemalloc.take_snapshot()
            tracemalloc.stop()
            by_file: dict[str, int] = defaultdict(int)
            for stat in snap1.compare_to(snap0, "filename"):
                f = stat.traceback[0].filename
                short = f.split("/src/")[-1] if "/src/" in f else f.split("site-packages/")[-1]
                by_file[short] += stat.size_diff
            result["tracemalloc"] = {f: v / series for f, v in sorted(by_file.items(), key=lambda kv: -kv[1])[:12]}
        after = rss()
        holders = {"detectors (DetectorBank)": a.bank, "windows (WindowState)": a.windows, "slot map": a.slots,
                   "alert state (AlertManager, its own arrays)": a.alerts.manager, "series registry": store.series,
                   "rollup interval learner": store.rollups.learner, "rollup level decisions": store.rollups.decisions}
        seen: set[int] = set()
        import sys

        result.update(series=series, rss_before=before, rss_after=after, per_series=(after - before) / series,
                      numba="numba" in sys.modules,
                      arrays={k: _arrays_nbytes(v, seen) / series for k, v in holders.items()},
                      detector_slots=int(a.bank.capacity), held=len(a.slots))
        await a.stop()
        await pool.close()
        return result
    finally:
        services.drop_database(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--readings", type=int, default=3)
    ap.add_argument("--trace", action="store_true", help="also a tracemalloc run (its own overhead in its RSS)")
    ap.add_argument("--before", default=BEFORE_REV, help=f"revision of the 'before' column (default {BEFORE_REV})")
    ap.add_argument("--only", choices=["before", "after"], help="measure one tree only")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        import asyncio

        print(json.dumps(asyncio.run(_child(args.series, args.readings, args.trace))))
        return
    from startup import source_tree

    tmp = Path(tempfile.mkdtemp(prefix="up-bench-memory-"))
    try:
        trees = {}
        if args.only != "after":
            (tmp / "before").mkdir()
            trees["before"] = source_tree(args.before, tmp / "before")
        if args.only != "before":
            trees["after"] = REPO / "src"
        base = {k: baseline(v) for k, v in trees.items()}
        runs = {k: per_series(v, args.series, args.readings, False) for k, v in trees.items()}
        traced = {k: per_series(v, args.series, args.readings, True) for k, v in trees.items()} if args.trace else {}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    cols = list(trees)
    print(f"Baseline, RSS MB after each step of what `urbanpulse run` imports (before: {args.before})\n")
    print("| step | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for i, (step, _, _) in enumerate(base[cols[0]]["steps"]):
        cells = [f"{base[c]['steps'][i][1] / 1e6:.1f} (+{base[c]['steps'][i][2] / 1e6:.1f})" for c in cols]
        print(f"| {step} | " + " | ".join(cells) + " |")
    print("| pyarrow / httpx / numba imported | " + " | ".join(
        f"{base[c]['pyarrow']} / {base[c]['httpx']} / {base[c]['numba']}" for c in cols) + " |")
    print(f"\n{args.series:,} series, {args.readings} readings each, bytes per series\n")
    print("| | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    print("| **RSS growth** (after gc.collect()) | " + " | ".join(
        f"**{runs[c]['per_series']:,.0f}** ({runs[c]['rss_before'] / 1e6:.1f} -> {runs[c]['rss_after'] / 1e6:.1f} MB)"
        for c in cols) + " |")
    for k in runs[cols[0]]["arrays"]:
        print(f"| numpy: {k} | " + " | ".join(f"{runs[c]['arrays'].get(k, 0):,.0f}" for c in cols) + " |")
    print("| detector slots allocated | " + " | ".join(f"{runs[c]['detector_slots']:,}" for c in cols) + " |")
    print("| **RSS after the series** (the service with them) | " + " | ".join(
        f"**{runs[c]['rss_after'] / 1e6:.1f} MB**" for c in cols) + " |")
    print("| numba imported | " + " | ".join(str(runs[c].get("numba")) for c in cols) + " |")
    if traced:
        files = list(dict.fromkeys(f for c in cols for f in traced[c]["tracemalloc"]))
        print("\n| allocated by (tracemalloc, growth) | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
        print("| RSS growth with tracemalloc on | " + " | ".join(f"{traced[c]['per_series']:,.0f}" for c in cols) + " |")
        for f in files:
            print(f"| {f} | " + " | ".join(f"{traced[c]['tracemalloc'].get(f, 0):,.0f}" for c in cols) + " |")


if __name__ == "__main__":
    main()
