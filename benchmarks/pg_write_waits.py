#!/usr/bin/env python
"""Where a batch's write transaction spends its time inside PostgreSQL, sampled from outside.

The service's ``write`` stage (``urbanpulse_batch_stage_seconds{stage="write"}``) is one number
per batch: the time from taking a connection to the COMMIT, the commit-order wait included. To
tell the slow writes apart (the COPY itself, a lock, the WAL, a checkpoint, the wait for the
earlier batch) this samples ``pg_stat_activity`` every ``--interval`` seconds beside a benchmark
run, with no change to the service, and then groups the samples by transaction:

* ``sample --out FILE``: JSON lines, one per sample, until SIGINT/SIGTERM (the non-idle client
  backends, and the checkpointer, background writer and WAL writer); every 10th sample also
  ``pg_stat_wal``.
* ``report --samples FILE --pg-log LOG``: each transaction of the bench database that ran a
  ``COPY "readings"`` (a batch write), its duration (first to last sample, so up to one interval
  short), the rows its COPY was seen to have processed (``pg_stat_progress_copy``, a lower
  bound), the time per state and wait event, split into the fastest half, p90-p99 and the top
  1 %, split by whether it wrote alert changes, and whether it overlapped a checkpoint that the WAL volume or the timer started
  (``log_checkpoints`` lines from the server log; immediate ones, from CREATE/DROP DATABASE,
  listed apart). ``idle in transaction`` after the COPY is the service's own time inside the
  transaction: the commit-order wait (pipeline/ack_ledger.py), and whatever Python ran between
  statements.

Run (beside a latency run, see benchmarks/README.md, section ``lat16b``):
    .venv/bin/python benchmarks/pg_write_waits.py sample --out /tmp/pg.jsonl &
    ... benchmarks/analytics.py ...; kill %1
    .venv/bin/python benchmarks/pg_write_waits.py report --samples /tmp/pg.jsonl \\
        --pg-log /var/log/postgresql/postgresql-15-main.log
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ACTIVITY_SQL = """
SELECT a.pid, backend_type, a.datname, state, wait_event_type, wait_event,
       extract(epoch FROM xact_start)::float8 AS xs, left(query, 60) AS q,
       extract(epoch FROM clock_timestamp())::float8 AS now, c.tuples_processed AS copied
FROM pg_stat_activity a LEFT JOIN pg_stat_progress_copy c ON c.pid = a.pid
WHERE a.pid <> pg_backend_pid()
  AND ((backend_type = 'client backend' AND state <> 'idle')
       OR backend_type IN ('checkpointer', 'background writer', 'walwriter'))
"""
_WAL_SQL = "SELECT wal_fpi, wal_bytes::int8 AS wal_bytes, wal_buffers_full, wal_write, wal_sync FROM pg_stat_wal"
_COPY_READINGS = 'COPY "readings"'


async def sample(out: Path, dsn: str, interval: float) -> None:
    """Append samples to ``out`` until SIGINT or SIGTERM."""
    import asyncpg

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    conn = await asyncpg.connect(dsn)
    n = 0
    with out.open("w") as f:
        while not stop.is_set():
            t = time.time()
            rec: dict[str, Any] = {"t": t, "rows": [dict(r) for r in await conn.fetch(_ACTIVITY_SQL)]}
            if n % 10 == 0:
                rec["wal"] = dict(await conn.fetchrow(_WAL_SQL))
            n += 1
            f.write(json.dumps(rec) + "\n")
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, interval - (time.time() - t)))
            except asyncio.TimeoutError:
                pass
    await conn.close()


@dataclass
class Checkpoint:
    start: float
    end: float
    why: str

    @property
    def immediate(self) -> bool:
        return "immediate" in self.why


def checkpoints(log_path: Path, since: float, until: float) -> list[Checkpoint]:
    """The ``log_checkpoints`` lines of the server log between ``since`` and ``until``."""
    pat = re.compile(r"(\S+ \S+) UTC .*checkpoint (starting|complete): ?(.*)")
    out: list[Checkpoint] = []
    start: tuple[float, str] | None = None
    for line in log_path.open(errors="replace"):
        m = pat.match(line)
        if not m:
            continue
        t = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.timezone.utc).timestamp()
        if m.group(2) == "starting":
            start = (t, m.group(3))
        elif start is not None:
            if since <= t and start[0] <= until:
                out.append(Checkpoint(start[0], t, start[1]))
            start = None
    if start is not None and start[0] <= until:  # still running when the log was read
        out.append(Checkpoint(start[0], until, start[1]))
    return out


def category(row: dict[str, Any]) -> str:
    """What a backend of a write transaction was doing in one sample."""
    q = row["q"] or ""
    wait = f"{row['wait_event_type']}:{row['wait_event']}" if row["wait_event"] else "on CPU"
    if row["state"] == "idle in transaction":
        if q.startswith(_COPY_READINGS) or "l.locktype" in q:
            return "idle in transaction after the COPY (commit-order wait)"
        return f"idle in transaction after {q.split()[0] if q.split() else '?'}"
    if q.startswith(_COPY_READINGS):
        return f"COPY readings, {wait}"
    if q.startswith("COMMIT"):
        return f"COMMIT, {wait}"
    return f"other statements, {wait}"


@dataclass
class Transaction:
    start: float
    last: float
    parts: collections.Counter = field(default_factory=collections.Counter)
    writes: bool = False
    waited_until: float = 0.0  # the last sample in the COPY or the commit-order wait
    alerts: bool = False  # it wrote alert changes (statements on the alerts tables)
    rows: int = 0  # the most rows the COPY into readings was seen to have processed (a lower bound)

    @property
    def seconds(self) -> float:
        return self.last - self.start


def transactions(samples: list[dict[str, Any]], db_prefix: str) -> list[Transaction]:
    """The write transactions of the bench database (those that ran a COPY into readings)."""
    txs: dict[tuple[int, float], Transaction] = {}
    prev = None
    for s in samples:
        dt_s = min(0.05, s["t"] - prev) if prev is not None else 0.01
        prev = s["t"]
        for r in s["rows"]:
            if r["backend_type"] != "client backend" or r["xs"] is None or not (r["datname"] or "").startswith(db_prefix):
                continue
            tx = txs.setdefault((r["pid"], round(r["xs"], 6)), Transaction(r["xs"], r["now"]))
            tx.last = r["now"]
            what = category(r)
            tx.parts[what] += dt_s
            if what.startswith("COPY readings") or "commit-order" in what:
                tx.waited_until = r["now"]
            if "alert" in (r["q"] or ""):
                tx.alerts = True
            if (r["q"] or "").startswith(_COPY_READINGS):
                tx.writes = True
                if r["state"] == "active" and r.get("copied"):
                    tx.rows = max(tx.rows, r["copied"])
    return sorted((t for t in txs.values() if t.writes), key=lambda t: t.seconds)


def report(samples_path: Path, pg_log: Path, db_prefix: str) -> dict[str, Any]:
    samples = [json.loads(line) for line in samples_path.open() if line.strip()]
    txs = transactions(samples, db_prefix)
    if not txs:
        return {"transactions": 0}
    span = (min(t.start for t in txs), max(t.last for t in txs))
    cks = checkpoints(pg_log, span[0] - 5, span[1] + 5) if pg_log.exists() else []
    by_volume = [c for c in cks if not c.immediate]

    def overlaps(t: Transaction) -> bool:
        return any(c.start <= t.last and t.start <= c.end for c in by_volume)

    wal = [(s["t"], s["wal"]) for s in samples if "wal" in s]

    def wal_rate(t: Transaction, key: str) -> float:
        """``pg_stat_wal[key]`` per second over the samples that bracket the transaction."""
        before = [w for w in wal if w[0] <= t.start] or wal[:1]
        after = [w for w in wal if w[0] >= t.last] or wal[-1:]
        (t0, w0), (t1, w1) = before[-1], after[0]
        return (w1[key] - w0[key]) / (t1 - t0) if t1 > t0 else 0.0

    def group(ts: list[Transaction]) -> dict[str, Any]:
        parts: collections.Counter = collections.Counter()
        for t in ts:
            parts.update(t.parts)
        k = len(ts)
        return {"n": k, "mean_ms": round(1000 * sum(t.seconds for t in ts) / k, 1),
                "after_the_wait_ms": round(1000 * sum(t.last - (t.waited_until or t.start) for t in ts) / k, 1),
                "overlap_checkpoint": sum(overlaps(t) for t in ts),
                "rows_seen_mean": round(sum(t.rows for t in ts) / k),
                "wal_mb_per_s_meanwhile": round(sum(wal_rate(t, "wal_bytes") for t in ts) / k / 2**20, 1),
                "full_page_images_per_s_meanwhile": round(sum(wal_rate(t, "wal_fpi") for t in ts) / k),
                "mean_ms_by_state": {w: round(1000 * v / k, 1) for w, v in parts.most_common(10)}}

    def split(ts: list[Transaction]) -> dict[str, Any]:
        """Duration percentiles, rows, and the time after the COPY and the commit-order wait."""
        if not ts:
            return {"n": 0}
        ds = sorted(t.seconds for t in ts)
        post = sorted(t.last - (t.waited_until or t.start) for t in ts)
        k = len(ts)
        return {"n": k, "p50_ms": round(1000 * ds[k // 2], 1), "p99_ms": round(1000 * ds[min(k - 1, int(0.99 * k))], 1),
                "rows_seen_mean": round(sum(t.rows for t in ts) / k),
                "after_the_wait_p50_ms": round(1000 * post[k // 2], 1), "after_the_wait_max_ms": round(1000 * post[-1], 1)}

    n = len(txs)
    pct = {f"p{q}": round(1000 * txs[min(n - 1, int(q / 100 * n))].seconds, 1) for q in (50, 90, 99)}
    return {
        "transactions": n, "duration_ms": pct,
        "span_s": round(span[1] - span[0], 1),
        "checkpoints_by_wal_or_timer": [{"at": dt.datetime.fromtimestamp(c.start, dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3],
                                         "seconds": round(c.end - c.start, 2), "why": c.why} for c in by_volume],
        "immediate_checkpoints": sum(c.immediate for c in cks),
        "share_overlapping_a_checkpoint": round(sum(overlaps(t) for t in txs) / n, 2),
        "wal": ({k: wal[-1][1][k] - wal[0][1][k] for k in wal[0][1]} if len(wal) > 1 else {}),
        "during_a_checkpoint": split([t for t in txs if overlaps(t)]),
        "outside_checkpoints": split([t for t in txs if not overlaps(t)]),
        "with_alert_changes": split([t for t in txs if t.alerts]),
        "without_alert_changes": split([t for t in txs if not t.alerts]),
        "fastest_half": group(txs[: n // 2]),
        "p90_p99": group(txs[int(0.9 * n): int(0.99 * n)] or txs[-1:]),
        "top_1pct": group(txs[int(0.99 * n):]),
        "top_1pct_each": [{"at": dt.datetime.fromtimestamp(t.start, dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3],
                           "ms": round(1000 * t.seconds), "rows_seen": t.rows, "overlaps_checkpoint": overlaps(t),
                           "full_page_images_per_s": round(wal_rate(t, "wal_fpi")),
                           "by_state_ms": {w: round(1000 * v) for w, v in t.parts.most_common(4)}}
                          for t in txs[int(0.99 * n):]],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample", help="sample pg_stat_activity until SIGINT/SIGTERM")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    s.add_argument("--interval", type=float, default=0.01, help="seconds between samples (default 0.01)")
    r = sub.add_parser("report", help="per-transaction breakdown of the samples")
    r.add_argument("--samples", type=Path, required=True)
    r.add_argument("--pg-log", type=Path, default=Path("/var/log/postgresql/postgresql-15-main.log"))
    r.add_argument("--db-prefix", default="up_bench", help="the bench database's name starts so")
    a = p.parse_args()
    if a.cmd == "sample":
        asyncio.run(sample(a.out, a.dsn, a.interval))
    else:
        print(json.dumps(report(a.samples, a.pg_log, a.db_prefix), indent=1))


if __name__ == "__main__":
    main()
