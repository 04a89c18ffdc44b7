"""Shared by the registry and quality tests: a migrated database with a service-like pool, and
stored readings written through the real batch writer (binary COPY, partitions, series ids)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
import numpy as np
import pytest

import services
from urbanpulse.model import ReadingColumns
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore


@dataclass
class RegistryDb:
    """A migrated database (plain PostgreSQL mode) and a pool set up the way the service does."""

    dsn: str
    pool: asyncpg.Pool
    store: ReadingStore

    async def write(self, sensor: str, metric: str, ts_us: Sequence[int] | np.ndarray, values: Sequence[float] | None = None,
                    flags: Sequence[int] | None = None) -> None:
        """Store readings of one series with the production writer."""
        ts = np.asarray(ts_us, dtype=np.int64)
        n = len(ts)
        cols = ReadingColumns(
            sensor_id=[sensor] * n, metric=[metric] * n, ts_us=ts,
            value=np.asarray(values if values is not None else np.arange(n, dtype=float), dtype=np.float64),
            lat=np.full(n, np.nan), lon=np.full(n, np.nan), unit=[None] * n,
            msg=np.arange(n, dtype=np.int32), item=np.full(n, -1, np.int32), has_null_value=np.zeros(n, bool),
            flags=np.asarray(flags if flags is not None else np.zeros(n), dtype=np.int16))
        await self.store.write(cols, [], "replay")


@pytest.fixture
async def rdb(fresh_db: str) -> AsyncIterator[RegistryDb]:
    pool = await services.open_migrated_pool(fresh_db, min_size=1, max_size=4)
    try:
        partitions = MonthlyPartitions()
        async with pool.acquire() as c:
            await partitions.load(c)
        yield RegistryDb(fresh_db, pool, ReadingStore(pool, partitions, rollups=False))
    finally:
        await pool.close()
