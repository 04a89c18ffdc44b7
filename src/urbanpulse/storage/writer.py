"""Durable, idempotent batch writes of readings and quarantined input.

A batch is written in one transaction: readings plus its rejections. Readings are binary
COPY'd straight into ``readings`` (the fastest path, measured); if that hits the natural key
(a redelivery after a crash), the transaction is rolled back and the batch is merged through
a staging table with ``ON CONFLICT DO NOTHING`` instead. After a conflict the writer stays
in merge mode until a merge finds no duplicates, so a replay storm does not pay twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import asyncpg


from urbanpulse.model import ReadingColumns, Rejection
from urbanpulse.storage.binary_copy import READING_COLUMNS, encode_readings
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.series import SeriesRegistry

log = logging.getLogger(__name__)

SOURCE_IDS = {"mqtt": 1, "kafka": 2, "http": 3, "replay": 4}

_QUARANTINE_SQL = """
INSERT INTO quarantine (source, topic, kafka_partition, kafka_offset, item, reason, detail, payload, payload_size)
SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::int8[], $5::int4[], $6::text[], $7::text[],
                     $8::bytea[], $9::int4[])
ON CONFLICT (topic, kafka_partition, kafka_offset, item) WHERE kafka_offset IS NOT NULL DO NOTHING
"""


@dataclass(slots=True)
class WriteResult:
    """What one batch write did."""

    stored: int
    duplicates: int
    quarantined: int
    seconds: float
    merged: bool


async def prepare_connection(conn: asyncpg.Connection) -> None:
    """Per-connection setup: the staging table used by the merge path."""
    await conn.execute("""
        CREATE TEMP TABLE IF NOT EXISTS readings_stage
            (LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS""")


class ReadingStore:
    """Writes validated readings and rejections; safe to call from several tasks at once."""

    def __init__(self, pool: asyncpg.Pool, partitions: MonthlyPartitions | None,
                 quarantine_payload_limit: int = 64 * 1024) -> None:
        self.pool = pool
        self.series = SeriesRegistry()
        self.partitions = partitions
        self.payload_limit = quarantine_payload_limit
        self._merge_batches_left = 0

    async def write(self, readings: ReadingColumns | None, rejections: list[Rejection], source: str) -> WriteResult:
        """Store a batch durably; returns only after COMMIT. Raises asyncpg errors to retry."""
        start = time.perf_counter()
        n = len(readings) if readings is not None else 0
        payload = None
        if readings is not None and n:
            sid = await self.series.ids_for(self.pool, readings.sensor_id, readings.metric)
            if self.partitions is not None:
                await self.partitions.ensure(self.pool, readings.ts_us)
            payload = encode_readings(sid, readings.ts_us, readings.value, readings.flags,
                                      readings.lat, readings.lon, SOURCE_IDS.get(source, 0))
        merged = False
        stored = 0
        async with self.pool.acquire() as conn:
            if payload is None:
                if rejections:
                    async with conn.transaction():
                        await self._quarantine(conn, rejections)
            elif self._merge_batches_left == 0 and await self._copy(conn, payload, rejections):
                stored = n
            else:
                merged = True
                stored = await self._merge(conn, payload, rejections)
                self._merge_batches_left = max(0, self._merge_batches_left - 1) if stored == n else 4
        return WriteResult(stored=stored, duplicates=n - stored, quarantined=len(rejections),
                           seconds=time.perf_counter() - start, merged=merged)

    async def _copy(self, conn: asyncpg.Connection, payload: bytes, rejections: list[Rejection]) -> bool:
        """COPY straight into readings; False (rolled back) if the batch overlaps stored rows."""
        try:
            async with conn.transaction():
                await conn.copy_to_table("readings", source=_stream(payload), columns=READING_COLUMNS,
                                         format="binary")
                await self._quarantine(conn, rejections)
        except asyncpg.UniqueViolationError:
            self._merge_batches_left = 4
            log.info("batch overlaps stored readings (a redelivery); merging idempotently")
            return False
        return True

    async def _merge(self, conn: asyncpg.Connection, payload: bytes, rejections: list[Rejection]) -> int:
        """COPY into the staging table, insert what is new; returns how many rows were new."""
        async with conn.transaction():
            await conn.copy_to_table("readings_stage", source=_stream(payload), columns=READING_COLUMNS,
                                     format="binary")
            status = await conn.execute("INSERT INTO readings SELECT * FROM readings_stage ON CONFLICT DO NOTHING")
            await self._quarantine(conn, rejections)
        return int(status.rsplit(" ", 1)[-1])

    async def _quarantine(self, conn: asyncpg.Connection, rejections: list[Rejection]) -> None:
        if not rejections:
            return
        limit = self.payload_limit
        await conn.execute(
            _QUARANTINE_SQL,
            [r.source for r in rejections],
            [_clean(r.topic) for r in rejections],
            [r.partition for r in rejections],
            [r.offset for r in rejections],
            [r.item for r in rejections],
            [r.reason.value for r in rejections],
            [_clean(r.detail) for r in rejections],
            [r.payload[:limit] for r in rejections],
            [len(r.payload) for r in rejections],
        )


async def _stream(data: bytes, chunk: int = 1 << 20):
    """Feed COPY from memory (asyncpg treats plain bytes as a file path)."""
    view = memoryview(data)
    for i in range(0, len(view), chunk):
        yield view[i:i + chunk]


def _clean(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; keep everything else as it came."""
    return text.replace("\x00", "\\0") if text is not None and "\x00" in text else text


