"""A silence alert raised by the reading that ends a gap carries the gap in seconds as its trigger's value, as the
periodic check's silence alerts do (`alerts.model`: "for the silence detector: value = seconds without a
reading"), not the value of that reading: the live page showed "silence · 30.2 degC" (newcomer44's noticed list).
It is also stamped as the periodic check's are (docs/alerts.md: "for a silence alert it is the time of the last
reading before the gap"), not at the reading that ended it (newcomer45), so a gap the periodic check already reported
during it is not counted a second time when its reading arrives, nor after a restart that redelivers that reading.

Against real PostgreSQL through StreamAnalytics, with the gap's length, the history before it, the readings' values
and where the batch boundary falls (the gap's reading first in its batch, so the reading before is the bank's last
time, or inside a batch, so it is the row before) generated.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import datetime, timedelta, timezone

import asyncpg
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import services
from readings import readings_columns
from urbanpulse.alerts.model import Trigger
from urbanpulse.analytics import StreamAnalytics
from urbanpulse.config import load_settings
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore

pytestmark = pytest.mark.integration

HOUR_US = 3_600_000_000
BASE_US = 1_700_000_000_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
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
            rows = await pool.fetch("SELECT detector, triggers, opened_at FROM alerts WHERE sensor_id = $1", sensor)
            return [(r["detector"], json.loads(r["triggers"]), r["opened_at"]) for r in rows]
        finally:
            await a.stop()
            await pool.close()

    alerts = asyncio.run(go())
    silence = [(t, opened) for d, t, opened in alerts if d == "silence"]
    assert silence, f"no silence alert for a {(ts[end_of_gap] - ts[end_of_gap - 1]) / HOUR_US:.1f} h gap: {alerts}"
    gap_s = (ts[end_of_gap] - ts[end_of_gap - 1]) / 1e6
    (first, *_), opened_at = silence[0]
    assert first["value"] == pytest.approx(gap_s), (first, gap_s, values[end_of_gap])
    # opened at the last reading before the gap, as the periodic check's silences are (docs/alerts.md)
    assert _us(opened_at) == ts[end_of_gap - 1], (opened_at, _iso(ts[end_of_gap - 1]), _iso(ts[end_of_gap]))
    assert Trigger.from_json(first).ts_us == ts[end_of_gap - 1], (first, _iso(ts[end_of_gap]))


def _us(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1)


def _iso(t_us: int) -> str:
    """A trigger's ``ts`` as the alert store writes it."""
    return Trigger(int(t_us), 0.0, 0.0).to_json()["ts"]


@st.composite
def watched_gap(draw: st.DrawFn) -> tuple[int, int, int, int]:
    """A gap of 5-200 hours after 150-400 hourly readings, how far into the gap the periodic check runs (the other
    sensor's last reading before it), and the seed of the jitter and values."""
    before = draw(st.integers(150, 400))
    gap_h = draw(st.integers(5, 200))
    checked_h = draw(st.integers(4, gap_h - 1))
    return before, gap_h, checked_h, draw(st.integers(0, 2**32 - 1))


@given(watched_gap(), st.booleans())
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_gap_the_periodic_check_reported_is_not_counted_again_by_its_reading(
        fresh_db: str, case: tuple[int, int, int, int], restart: bool) -> None:
    """A steady sensor keeps its source's watermark moving through another sensor's gap; the periodic check (tick)
    reports the gap while it lasts, then the reading that ends it arrives (after a restart of the analytics, which
    reloads the open alert, when ``restart``). One alert, one trigger: the gap, stamped at the last reading before
    it. On main the reading's trigger was a second one, stamped at the reading (trigger_count 2)."""
    before, gap_h, checked_h, seed = case
    rng = np.random.default_rng(seed)
    n = next(_names)
    quiet, steady = f"quiet-{n}", f"steady-{n}"
    hours = np.arange(before + gap_h + 3)
    ts = BASE_US + hours * HOUR_US + rng.integers(-60_000_000, 60_000_000, len(hours))
    values = 20 + rng.normal(0, 0.5, len(hours))
    has_quiet = (hours < before) | (hours >= before - 1 + gap_h)  # quiet's last reading before the gap: before - 1
    end_of_gap = before - 1 + gap_h
    batches = [(hours < before), (hours >= before) & (hours < before - 1 + checked_h + 1), hours >= before + checked_h]

    async def go() -> list[asyncpg.Record]:
        pool = await _pool(fresh_db)
        store = ReadingStore(pool, MonthlyPartitions())
        a = StreamAnalytics(load_settings(None), pool)
        await a.start()
        try:
            for k, rows in enumerate(batches):
                if k == 2:
                    prepared = await a.ready(await a.tick())  # the periodic check, the gap still open
                    if prepared is not None:
                        async with pool.acquire() as c, c.transaction():
                            await a.write(c, prepared)
                        a.committed(prepared)
                    if restart:
                        await a.stop()
                        a = StreamAnalytics(load_settings(None), pool)
                        await a.start()
                sensors = [s for h in np.flatnonzero(rows) for s in ([steady, quiet] if has_quiet[h] else [steady])]
                at = [ts[h] for h in np.flatnonzero(rows) for _ in range(1 + int(has_quiet[h]))]
                vals = [values[h] for h in np.flatnonzero(rows) for _ in range(1 + int(has_quiet[h]))]
                rc = readings_columns(sensors, "temperature", at, vals)
                sid = await store.series.ids_for(pool, rc.sensor_id, rc.metric)
                prepared = await a.ready(await a.prepare("mqtt", rc, sid))
                await store.write(rc, [], "mqtt", series_ids=sid, in_transaction=lambda c: a.write(c, prepared))
                if prepared is not None:
                    a.committed(prepared)
            return await pool.fetch("SELECT opened_at, trigger_count, triggers FROM alerts "
                                    "WHERE sensor_id = $1 AND detector = 'silence'", quiet)
        finally:
            await a.stop()
            await pool.close()

    rows = asyncio.run(go())
    assert len(rows) == 1, f"{len(rows)} silence alerts for one {gap_h} h gap: {rows}"
    (alert,) = rows
    triggers = json.loads(alert["triggers"])
    assert alert["trigger_count"] == 1, (gap_h, checked_h, triggers, _iso(ts[end_of_gap]))
    assert _us(alert["opened_at"]) == ts[before - 1] and Trigger.from_json(triggers[0]).ts_us == ts[before - 1]
