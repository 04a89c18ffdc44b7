"""The state of the PostgreSQL server and the machine around a latency run, before and after.

Why: the first latency run on a fresh or long-idle server measured a stored p99 two to five times
that of the runs after it (benchmarks/README.md, section ``lat18``). The difference was not in the
service: the server had to *create* the WAL segments the run wrote into (zero-filled 16 MB files,
each written and fsynced by a backend holding the WAL write lock), where a warm server renames
old segments instead. A run's figures therefore say little without the server's state beside
them, so the latency phase records it:

* ``wal_segments_before`` / ``_after``: files in ``pg_wal`` (``pg_ls_waldir()``);
* ``wal_segments_created``: segment files present after the run whose inode was not there before
  (PostgreSQL recycles a segment by renaming it, which keeps its inode; a created one is new).
  Only when ``pg_wal`` is readable from here (a local server, the benchmark run as its owner or
  root), else ``None``; segments created and removed again within the run are not counted;
* the WAL written, checkpoints requested/timed, buffers written by backends themselves;
* the machine's CPU over the run from ``/proc/stat``: busy cores, steal, and (filled in by the
  caller) the cores used by processes that are not the benchmark's, i.e. disturbance.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ingest as ib  # noqa: F401 - db_call


def proc_stat() -> list[int] | None:
    """The machine's CPU counters (the ``cpu`` line of /proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None


def minor_faults(pid: int | None) -> int | None:
    """Minor page faults of process ``pid`` so far (field 10 of /proc/PID/stat), or None when it is
    gone or off Linux. Each maps a page, for heap and anonymous memory a fresh one: what a process
    takes in fresh memory, which this VM makes slow (benchmarks/README.md, `lat18`, `lat19`)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[7])  # after the command name, which may hold spaces


def _wal_inodes(data_directory: str) -> set[int] | None:
    """Inodes of the WAL segment files, or None when pg_wal cannot be read from this process."""
    wal = Path(data_directory) / "pg_wal"
    try:
        return {e.inode() for e in os.scandir(wal) if e.is_file() and len(e.name) == 24}
    except OSError:
        return None


def snapshot(dsn: str) -> dict[str, Any]:
    """Counters of the server (pg_ls_waldir, pg_stat_wal, pg_stat_bgwriter) and the machine now."""
    async def go(conn):  # noqa: ANN001
        waldir = await conn.fetchrow("SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM pg_ls_waldir()")
        wal = await conn.fetchrow("SELECT wal_bytes, wal_buffers_full, wal_write, wal_sync FROM pg_stat_wal")
        bgw = await conn.fetchrow("""SELECT checkpoints_timed, checkpoints_req, buffers_backend,
                                            buffers_backend_fsync FROM pg_stat_bgwriter""")
        settings = dict(await conn.fetch("""SELECT name, setting || coalesce(unit, '') FROM pg_settings
                                            WHERE name IN ('min_wal_size', 'max_wal_size', 'wal_init_zero',
                                                           'wal_recycle', 'data_directory')"""))
        return {"segments": int(waldir["n"]), "wal_dir_bytes": int(waldir["bytes"]), **dict(wal), **dict(bgw),
                "settings": settings}
    out = ib.db_call(dsn, go)
    out["wal_bytes"] = int(out["wal_bytes"])
    inodes = _wal_inodes(out["settings"].get("data_directory", ""))
    out["inodes"] = inodes
    out["cpu"] = proc_stat()
    return out


def difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What changed between two snapshots, for the result's ``postgres_state`` (``cpu`` of
    ``after`` may be taken apart, e.g. when the producer stopped)."""
    created = (len(after["inodes"] - before["inodes"])
               if before["inodes"] is not None and after["inodes"] is not None else None)
    res: dict[str, Any] = {
        "wal_segments_before": before["segments"], "wal_segments_after": after["segments"],
        "wal_segments_created": created,
        "wal_mb": round((after["wal_bytes"] - before["wal_bytes"]) / 2**20, 1),
        "wal_buffers_full": after["wal_buffers_full"] - before["wal_buffers_full"],
        "checkpoints_req": after["checkpoints_req"] - before["checkpoints_req"],
        "checkpoints_timed": after["checkpoints_timed"] - before["checkpoints_timed"],
        "buffers_backend": after["buffers_backend"] - before["buffers_backend"],
        "settings": {k: v for k, v in after["settings"].items() if k != "data_directory"},
    }
    if before["cpu"] and after["cpu"]:
        d = [a - b for a, b in zip(after["cpu"], before["cpu"])]
        total = sum(d[:8]) or 1
        ncpu = os.cpu_count() or 1
        busy = total - d[3] - d[4]  # all but idle and iowait
        res["machine_busy_cores"] = round(ncpu * busy / total, 2)
        res["machine_steal_share"] = round(d[7] / total, 4)
        res["machine_iowait_share"] = round(d[4] / total, 4)
    return res


def warm_wal(dsn: str, megabytes: int | None = None) -> dict[str, Any]:
    """Leave WAL segments ready for reuse, as a server that has recently been under load has them:
    write ``megabytes`` of WAL (default twice ``max_wal_size``) as 1 MB non-transactional logical
    messages (no table, nothing to replay) and CHECKPOINT. The checkpoints on the way lift the
    server's estimate of the WAL per checkpoint cycle, so the segments passed are renamed ahead
    for reuse instead of removed. This creates, before the measured run, the segments a cold
    server would otherwise create during it (zero-filled and fsynced under the WAL write lock).
    Not the service's doing; see the module docstring. Returns the segment counts."""
    async def go(conn):  # noqa: ANN001
        n0 = await conn.fetchval("SELECT count(*) FROM pg_ls_waldir()")
        mb = megabytes
        if mb is None:
            mb = 2 * int(await conn.fetchval("SELECT setting::int FROM pg_settings WHERE name = 'max_wal_size'"))
        chunk = "x" * 2**20
        for _ in range(max(0, mb)):
            await conn.execute("SELECT pg_logical_emit_message(false, 'urbanpulse-bench-wal-warmup', $1::text)", chunk)
        await conn.execute("CHECKPOINT")
        n1 = await conn.fetchval("SELECT count(*) FROM pg_ls_waldir()")
        return {"megabytes": mb, "segments_before": int(n0), "segments_after": int(n1)}
    return ib.db_call(dsn, go)


def cool_wal(dsn: str, checkpoints: int = 30) -> dict[str, Any]:
    """The opposite of ``warm_wal``, to measure a cold server on purpose: leave ``pg_wal`` as a
    server has it after a quiet period or a run of small checkpoints (a test suite's CREATE and
    DROP DATABASE; each lowers the estimate of WAL per cycle by 10 %), i.e. few segments ready.
    Small checkpoints first lower the estimate; then the ready segments are passed two at a time
    (a segment switch counts as WAL written, so passing them all at once would raise the estimate
    again), each pair followed by a checkpoint, which removes them instead of renaming them ahead."""
    async def go(conn):  # noqa: ANN001
        async def small_wal() -> None:
            await conn.execute("SELECT pg_logical_emit_message(false, 'urbanpulse-bench-wal-cooldown', 'x')")

        n0 = int(await conn.fetchval("SELECT count(*) FROM pg_ls_waldir()"))
        for _ in range(checkpoints):
            await small_wal()
            await conn.execute("CHECKPOINT")
        for _ in range(n0 // 2 + 1):
            for _ in range(2):
                await small_wal()
                await conn.execute("SELECT pg_switch_wal()")
            await conn.execute("CHECKPOINT")
        n1 = await conn.fetchval("SELECT count(*) FROM pg_ls_waldir()")
        return {"segments_before": n0, "segments_after": int(n1)}
    return ib.db_call(dsn, go)
