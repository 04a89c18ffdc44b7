"""The service's ingest pipeline with a personal topic class, on a real PostgreSQL, for the privacy
properties: one set-up, so each test file states only its policy and what it checks.

Why: the privacy tests drive canonical JSON on a personal topic next to the same readings on an
open topic through the real parts (router, privacy stage, validation, quarantine, COPY) and read
back what was stored; four files built that pipeline the same way.
"""

from __future__ import annotations

import time
from typing import Any

import services
from urbanpulse.config import IngestSettings, load_settings
from urbanpulse.formats.base import DecodeLimits, MessageBatch
from urbanpulse.formats.router import build_router
from urbanpulse.metrics import IngestMetrics
from urbanpulse.pipeline import Pipeline
from urbanpulse.privacy import build_privacy_stage
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore


async def open_store(dsn: str) -> tuple[Any, MonthlyPartitions]:
    """A migrated pool on ``dsn`` and its loaded monthly partitions."""
    pool = await services.open_migrated_pool(dsn, min_size=1, max_size=2)
    parts = MonthlyPartitions()
    async with pool.acquire() as c:
        await parts.load(c)
    return pool, parts


async def personal_pipeline(pool: Any, parts: MonthlyPartitions, policy: dict | None,
                            personal: str = "phones/#", formats: dict | None = None) -> Pipeline:
    """A started pipeline of the service's parts with topics ``personal`` in the class ``personal``
    under ``policy`` (None: the class's defaults); ``formats``: the ``formats:`` section (routes and
    options), so a property can send line protocol or CSV on some topics (None: canonical JSON only)."""
    privacy: dict = {"key_file": None, "topics": {personal: "personal"}}
    if policy is not None:
        privacy["policies"] = {"personal": policy}
    s = load_settings(None, privacy=privacy, **({} if formats is None else {"formats": formats}))
    fmt = build_router(s, DecodeLimits(), MetricCatalogue.load())
    pipeline = Pipeline(ReadingStore(pool, parts), fmt, ReadingValidator(MetricCatalogue.load()),
                        IngestSettings(), IngestMetrics(), privacy=build_privacy_stage(s.privacy))
    await pipeline.start()
    return pipeline


async def through(pipeline: Pipeline, pool: Any, payloads: list[bytes], topics: list[str],
                  stored_columns: str, quarantine_columns: str = "topic, reason, detail, payload, item",
                  ) -> tuple[list[dict], list[dict]]:
    """``payloads`` (one per topic) through the pipeline into PostgreSQL: the readings stored
    (``stored_columns`` of readings ``r`` joined to series ``s``) and the quarantine rows
    (``quarantine_columns``); both tables are emptied after, so the next example starts clean."""
    await pipeline.submit(MessageBatch(source="mqtt", payloads=payloads, topics=topics, received_ns=time.time_ns()))
    await pipeline.drain()
    assert not pipeline.halted
    stored = [dict(r) for r in await pool.fetch(
        f"SELECT {stored_columns} FROM readings r JOIN series s ON s.id = r.series_id")]
    rows = [dict(r) for r in await pool.fetch(f"SELECT {quarantine_columns} FROM quarantine")]
    await pool.execute("DELETE FROM readings; DELETE FROM quarantine")
    return stored, rows
