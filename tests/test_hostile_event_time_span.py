"""One message cannot make storage create a partition for every month since 1900 (robust31).

Before: with ``validation.max_age_s: null`` (a history import) the only floor on event times was
1900, so one message of readings spread over 1901..now made 1,512 monthly partitions of
``readings`` (48 s to write; on TimescaleDB, 1-day chunks: one per day). Each partition costs
every later query on ``readings`` planning time. Now ``validation.min_event_time`` (default
2000-01-01, configurable, null: 1900) quarantines earlier readings as ``too_old`` with a detail
saying how to import older history; history after it still loads with max_age_s null.

Validation property over generated times; the service test on real PostgreSQL over HTTP ingest."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import services
from urbanpulse.config import load_settings
from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, TimeRules

NOW_S = time.time()
HARD_FLOOR_S, HARD_CEIL_S = -2208988800, 7258118400  # 1900 .. 2200, bad_timestamp outside


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=HARD_FLOOR_S, max_value=int(NOW_S)), min_size=1, max_size=20),
       st.one_of(st.none(), st.integers(min_value=HARD_FLOOR_S, max_value=int(NOW_S))))
def test_a_reading_is_too_old_exactly_when_it_is_before_the_floor(times: list[int], floor: int | None):
    payload = json.dumps([{"sensor_id": "h", "metric": "temperature", "ts": t * 1000, "value": 1.0}
                          for t in times]).encode()
    batch = MessageBatch(source="t", payloads=[payload])
    out = ReadingValidator(MetricCatalogue.load(), TimeRules(max_age_s=None, min_event_time_s=floor),
                           clock=lambda: NOW_S).validate(batch, CanonicalJsonFormat().decode(batch), lambda k: b"")
    kept = [t for t in times if floor is None or t >= floor]
    assert len(out.rejections) == len(times) - len(kept)
    assert all(r.reason.value == "too_old" and "validation.min_event_time" in r.detail for r in out.rejections)
    assert sorted(int(t) for t in out.readings.ts_us // 1_000_000) == sorted(kept)


def test_the_floor_defaults_to_2000_and_null_means_1900():
    assert load_settings(None).validation.min_event_time == datetime(2000, 1, 1, tzinfo=timezone.utc)
    assert load_settings(None, validation={"min_event_time": None}).validation.min_event_time_s is None
    naive = load_settings(None, validation={"min_event_time": "1950-01-01T00:00:00"}).validation
    assert naive.min_event_time_s == datetime(1950, 1, 1, tzinfo=timezone.utc).timestamp()  # UTC, not the host's


def months_since(year: int) -> list[int]:
    """Epoch ms of the 15th of every month from ``year`` to last month."""
    last = np.datetime64(int(NOW_S), "s").astype("datetime64[M]") - 1
    months = np.arange(np.datetime64(f"{year}-01", "M"), last + 1)
    return [int((m.astype("datetime64[D]") + 14).astype("datetime64[ms]").astype(np.int64)) for m in months]






@pytest.mark.integration
async def test_one_message_spanning_a_century_makes_partitions_only_from_the_floor(history_service, fresh_db):
    client, h = history_service
    stamps = months_since(1901)
    line = json.dumps([{"sensor_id": "century", "metric": "temperature", "ts": t, "value": 10.0} for t in stamps])
    before = await services.partitions(fresh_db)
    r = await client.post("/ingest", content=line.encode(), headers=h)
    assert r.status_code == 200, r.text
    since_2000 = [t for t in stamps if t >= 946684800000]
    assert r.json()["stored"] == len(since_2000)
    rejected = r.json()["rejected"]
    assert len(rejected) == len(stamps) - len(since_2000)
    assert {x["reason"] for x in rejected} == {"too_old"} and "validation.min_event_time" in rejected[0]["detail"]
    assert await services.partitions(fresh_db) - before <= len(since_2000)  # before: 1,512 new partitions


@pytest.mark.integration
@pytest.mark.parametrize("history_service", [{"min_event_time": "1950-01-01T00:00:00Z"}], indirect=True)
async def test_older_history_loads_once_the_floor_is_set_earlier(history_service, fresh_db):
    client, h = history_service
    stamps = [t for t in months_since(1948) if t < 0][:30]  # 1948..1950: two years before the floor, then after
    line = json.dumps([{"sensor_id": "old-station", "metric": "temperature", "ts": t, "value": 3.0} for t in stamps])
    r = await client.post("/ingest", content=line.encode(), headers=h)
    assert r.status_code == 200, r.text
    floor_ms = datetime(1950, 1, 1, tzinfo=timezone.utc).timestamp() * 1000
    assert r.json()["stored"] == sum(1 for t in stamps if t >= floor_ms) > 0
    assert len(r.json()["rejected"]) == sum(1 for t in stamps if t < floor_ms) > 0
