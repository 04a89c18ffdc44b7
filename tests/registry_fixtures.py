"""Shared by the registry and quality tests: a migrated database with a service-like pool, and
stored readings written through the real batch writer (binary COPY, partitions, series ids)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
import numpy as np
import pytest

import services
from readings import readings_columns
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore, prepare_connection


@dataclass
class RegistryDb:
    """A migrated database (plain PostgreSQL mode) and a pool set up the way the service does."""

    dsn: str
    pool: asyncpg.Pool
    store: ReadingStore

    async def write(self, sensor: str, metric: str, ts_us: Sequence[int] | np.ndarray, values: Sequence[float] | None = None,
                    flags: Sequence[int] | None = None) -> None:
        """Store readings of one series with the production writer."""
        n = len(ts_us)
        cols = readings_columns([sensor] * n, metric, ts_us,
                                values if values is not None else np.arange(n, dtype=float), flags)
        await self.store.write(cols, [], "replay")


@contextlib.asynccontextmanager
async def registry_db(dsn: str, max_size: int = 4) -> AsyncIterator[RegistryDb]:
    """A service-like pool on a migrated database and the production writer over it (no rollups)."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, init=prepare_connection)
    try:
        partitions = MonthlyPartitions()
        async with pool.acquire() as c:
            await partitions.load(c)
        yield RegistryDb(dsn, pool, ReadingStore(pool, partitions, rollups=False))
    finally:
        await pool.close()


@pytest.fixture
async def rdb(fresh_db: str) -> AsyncIterator[RegistryDb]:
    await services.migrate_schema(fresh_db)
    async with registry_db(fresh_db) as db:
        yield db
