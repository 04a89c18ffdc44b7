"""What the register holds now, read without its models: the registered ids and the expected
reporting intervals the ingest path keeps in memory (:mod:`.membership`).

Apart from :mod:`.store` because that module imports the registry's pydantic models (API bodies,
import rows), about 10 ms of CPU to build, which a start need not pay before its first batch: the
API and the ``registry`` command import them when they are used (benchmarks/README.md, ``spawn20``).
"""

from __future__ import annotations

import asyncpg

Executor = asyncpg.Connection | asyncpg.Pool


async def registered_ids(db: Executor) -> set[str]:
    """Ids of every currently registered sensor."""
    return {r[0] for r in await db.fetch("SELECT sensor_id FROM sensors_history WHERE valid_to IS NULL")}


async def expected_intervals(db: Executor) -> dict[tuple[str, str], float]:
    """``{(sensor_id, metric): interval_s}`` from the registry: the silence detector's and the
    completeness figures' expected reporting interval for each registered series."""
    rows = await db.fetch("SELECT sensor_id, metric, interval_s FROM sensor_metrics WHERE interval_s IS NOT NULL")
    return {(r["sensor_id"], r["metric"]): float(r["interval_s"]) for r in rows}
