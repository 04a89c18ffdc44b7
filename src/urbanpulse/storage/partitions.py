"""Monthly range partitions of ``readings`` for plain PostgreSQL, created as data arrives."""

from __future__ import annotations

import asyncio

import asyncpg
import numpy as np


def _partition_name(month: np.datetime64) -> str:
    return "readings_" + str(month).replace("-", "_")  # readings_2013_03


def partition_month(name: str) -> np.datetime64 | None:
    """The month of a partition this module named (``readings_2013_03``), else None."""
    if not name.startswith("readings_"):
        return None
    try:
        month = np.datetime64(name[len("readings_"):].replace("_", "-"), "M")
    except ValueError:
        return None
    return month if _partition_name(month) == name else None


class MonthlyPartitions:
    """Ensures a partition exists for every month a batch touches before it is copied.

    Known months are cached, so the common case is one ``np.unique`` per batch and no SQL.
    """

    def __init__(self) -> None:
        self._known: set[np.datetime64] = set()
        self._lock = asyncio.Lock()

    async def load(self, conn: asyncpg.Connection) -> None:
        """Learn which partitions already exist."""
        rows = await conn.fetch("""
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'readings'::regclass""")
        for r in rows:
            month = partition_month(r["relname"])
            if month is not None:
                self._known.add(month)

    def forget(self, month: np.datetime64) -> None:
        """A partition was dropped (retention): create it again if a reading for it comes."""
        self._known.discard(month)

    async def ensure(self, pool: asyncpg.Pool, ts_us: np.ndarray) -> None:
        """Create the partitions missing for these event times."""
        if len(ts_us) == 0:
            return
        lo, hi = ts_us.min(), ts_us.max()
        months = np.unique(np.array([lo, hi], dtype="datetime64[us]").astype("datetime64[M]"))
        if len(months) == 2 and months[1] - months[0] > 1:
            months = np.unique(ts_us.astype("datetime64[us]").astype("datetime64[M]"))
        missing = [m for m in months if m not in self._known]
        if not missing:
            return
        async with self._lock, pool.acquire() as conn:
            for month in missing:
                if month in self._known:
                    continue
                start, end = str(month) + "-01", str(month + 1) + "-01"
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {_partition_name(month)} PARTITION OF readings "
                    f"FOR VALUES FROM ('{start} 00:00:00+00') TO ('{end} 00:00:00+00')")
                self._known.add(month)
