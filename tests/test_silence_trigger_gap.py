"""A silence alert raised by the reading that ends a gap carries the gap in seconds as its trigger's value, as the
periodic check's silence alerts do (`alerts.model`: "for the silence detector: value = seconds without a
reading"), not the value of that reading: the live page showed "silence · 30.2 degC" (newcomer44's noticed list).

Against real PostgreSQL through StreamAnalytics, with the gap's length, the history before it, the readings' values
and where the batch boundary falls (the gap's reading first in its batch, so the reading before is the bank's last
time, or inside a batch, so it is the row before) generated.
"""

from __future__ import annotations

import asyncio
import itertools
import json

import asyncpg
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import services
from readings import readings_columns
from urbanpulse.analytics import StreamAnalytics
from urbanpulse.config import load_settings
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore

pytestmark = pytest.mark.integration

HOUR_US = 3_600_000_000
BASE_US = 1_700_000_000_000_000
_names = itertools.count()


@st.composite
def gapped_series(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Hourly readings (jittered by up to a minute), one gap of 4-200 hours, a few readings after; the index of the
    reading that ends the gap and where the second batch starts."""
    before = draw(st.integers(150, 400))
    after = draw(st.integers(1, 6))
    gap_h = draw(st.integers(4, 200))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    hours = np.r_[np.arange(before), before - 1 + gap_h + np.arange(after)]
    ts = BASE_US + hours * HOUR_US + rng.integers(-60_000_000, 60_000_000, len(hours))
    level = draw(st.floats(-50, 500, allow_nan=False))
    values = level + rng.normal(0, draw(st.floats(0.05, 5)), len(hours))
    split = draw(st.sampled_from([before, before - draw(st.integers(1, 50))]))
    return ts, values, before, split


async def _pool(dsn: str) -> asyncpg.Pool:
    return await services.open_migrated_pool(dsn, min_size=1, max_size=3)


@given(gapped_series())
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_silence_trigger_carries_the_gap_not_the_reading(fresh_db: str,
                                                           case: tuple[np.ndarray, np.ndarray, int, int]) -> None:
    ts, values, end_of_gap, split = case
    sensor = f"gappy-{next(_names)}"

    async def go() -> list[tuple[str, list[dict]]]:
        pool = await _pool(fresh_db)
        a = StreamAnalytics(load_settings(None), pool)
        await a.start()
        try:
            store = ReadingStore(pool, MonthlyPartitions())
            for lo, hi in ((0, split), (split, len(ts))):
                rc = readings_columns([sensor] * (hi - lo), "temperature", ts[lo:hi], values[lo:hi])
                sid = await store.series.ids_for(pool, rc.sensor_id, rc.metric)
                prepared = await a.ready(await a.prepare("mqtt", rc, sid))
                await store.write(rc, [], "mqtt", series_ids=sid, in_transaction=lambda c: a.write(c, prepared))
                if prepared is not None:
                    a.committed(prepared)
            rows = await pool.fetch("SELECT detector, triggers FROM alerts WHERE sensor_id = $1", sensor)
            return [(r["detector"], json.loads(r["triggers"])) for r in rows]
        finally:
            await a.stop()
            await pool.close()

    alerts = asyncio.run(go())
    silence = [t for d, t in alerts if d == "silence"]
    assert silence, f"no silence alert for a {(ts[end_of_gap] - ts[end_of_gap - 1]) / HOUR_US:.1f} h gap: {alerts}"
    gap_s = (ts[end_of_gap] - ts[end_of_gap - 1]) / 1e6
    first = silence[0][0]
    assert first["value"] == pytest.approx(gap_s), (first, gap_s, values[end_of_gap])
