"""Replaying every Beijing station file through the real pipeline into real PostgreSQL:
received = stored + quarantined, and every `NA` cell is accounted for as `missing_value`."""

from __future__ import annotations

import asyncpg
import pytest

from urbanpulse.config import load_settings
from urbanpulse.connectors.replay import ReplaySource
from urbanpulse.datasets.beijing import expected_counts, iter_payloads, read_station, station_files
from urbanpulse.service import IngestService

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_replay_of_all_beijing_stations_accounts_for_every_reading(fresh_db: str) -> None:
    stations = [read_station(f) for f in station_files()]
    assert len(stations) == 12
    expected = [expected_counts(s) for s in stations]
    total = sum(e["readings"] for e in expected)
    missing = sum(e["missing_total"] for e in expected)

    def payloads():
        for s in stations:
            yield from iter_payloads(s, readings_per_message=len(s.values))  # one message per station-hour

    settings = load_settings(None, database={"dsn": fresh_db}, api={"enabled": False},
                             validation={"max_age_s": None})
    source = ReplaySource(payloads(), messages_per_batch=1000)
    service = IngestService(settings, [source])
    await service.start()
    try:
        await source.finished.wait()
    finally:
        await service.stop()

    tally, reasons = service.metrics.tally, service.metrics.reasons
    assert tally["received"] == total == 420_768 * 11
    assert tally["received"] == tally["stored"] + tally["quarantined"]
    assert tally["duplicates"] == 0
    assert dict(reasons) == {"missing_value": missing}

    conn = await asyncpg.connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM readings") == total - missing
        by_reason = dict(await conn.fetch("SELECT reason, count(*) FROM quarantine GROUP BY reason"))
        assert by_reason == {"missing_value": missing}
        # per metric, the quarantined NAs match the files' NA cells
        per_metric = {}
        for e in expected:
            for metric, n in e["missing"].items():
                per_metric[metric] = per_metric.get(metric, 0) + n
        rows = await conn.fetch("""
            SELECT convert_from(payload, 'UTF8')::jsonb ->> 'metric' AS metric, count(*) AS n
            FROM quarantine GROUP BY 1""")
        assert {r["metric"]: r["n"] for r in rows} == {m: n for m, n in per_metric.items() if n}
        # four years of hourly data landed in monthly partitions
        parts = await conn.fetchval("SELECT count(*) FROM pg_inherits WHERE inhparent = 'readings'::regclass")
        assert parts == 49  # Feb 2013 (UTC) .. Feb 2017
    finally:
        await conn.close()
