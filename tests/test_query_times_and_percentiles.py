"""Query routes read times and percentiles one way (newcomer43b, items 1 and 2 of newcomer43's walkthrough).

Before: ``/readings?percentile=1.5`` was read as a percentage (column ``p1.5``) although docs/api.md says
fractions, and ``percentile=0`` and ``1e-9`` both named a column ``p0``; ``/quality?start=2026-12-05`` was a
422 ("should have timezone info") while ``/readings`` took a bare date as midnight UTC. Now ``percentile`` is a
fraction 0..1 (anything else a 422 naming the range), each fraction names its own column, and every query
route's times go through ``urbanpulse.query.spec.parse_time``.

Properties over generated fractions and time texts; the routes on a fresh PostgreSQL database."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from urbanpulse.api.routes.registry_deps import QueryTime
from urbanpulse.query.errors import QueryError
from urbanpulse.query.spec import parse_aggregates, parse_fraction, parse_time, percentile_name

FRACTIONS = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
OUTSIDE = st.one_of(st.floats(min_value=1.0, exclude_min=True, allow_infinity=True),
                    st.floats(max_value=0.0, exclude_max=True, allow_infinity=True), st.just(float("nan")))


@settings(max_examples=400, deadline=None)
@given(FRACTIONS)
def test_a_fraction_from_0_to_1_is_kept_as_sent(q: float):
    assert parse_fraction(repr(q)) == q
    assert parse_aggregates(None, repr(q), bucketed=True)[1] == (q,)


@settings(max_examples=400, deadline=None)
@given(OUTSIDE)
def test_anything_outside_0_to_1_is_refused_naming_the_range(q: float):
    with pytest.raises(QueryError, match="from 0 to 1"):
        parse_fraction(repr(q))


@settings(max_examples=600, deadline=None)
@given(FRACTIONS, FRACTIONS)
def test_two_different_fractions_never_share_a_column_name(a: float, b: float):
    assert (percentile_name(a) == percentile_name(b)) == (a == b)


@settings(max_examples=400, deadline=None)
@given(FRACTIONS)
def test_the_column_name_is_the_percentage_written_out(q: float):
    name = percentile_name(q)
    assert name.startswith("p") and "e" not in name.lower() and "-" not in name
    assert Decimal(name[1:]) / 100 == Decimal(repr(q))


def test_the_named_percentiles_and_agg_forms_keep_their_short_names():
    aggs, pcts = parse_aggregates("p50,p99.9,p95", "0.95,0.999,0.25", bucketed=True)
    assert tuple(percentile_name(q) for q in pcts) == ("p50", "p99.9", "p95", "p25")
    assert percentile_name(0.0) == percentile_name(-0.0) == "p0" and percentile_name(1e-9) == "p0.0000001"


DATES = st.dates(min_value=date(1, 1, 2), max_value=date(9999, 12, 30))
ZONES = st.sampled_from(["", "Z", "+00:00", "+02:00", "-05:30"])


@st.composite
def time_texts(draw) -> str:
    """The forms a planner types: a date alone, or a date and time with or without a zone."""
    d = draw(DATES)
    if draw(st.booleans()):
        return d.isoformat()
    t = draw(st.times()).replace(microsecond=0)
    return f"{d.isoformat()}T{t.isoformat()}{draw(ZONES)}"


@settings(max_examples=500, deadline=None)
@given(time_texts())
def test_the_time_type_of_the_history_routes_reads_a_time_as_parse_query_does(text: str):
    assert TypeAdapter(QueryTime).validate_python(text) == parse_time("start", text)


@settings(max_examples=200, deadline=None)
@given(DATES)
def test_a_date_alone_is_midnight_utc(d: date):
    assert TypeAdapter(QueryTime).validate_python(d.isoformat()) == datetime.combine(d, time(), timezone.utc)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(min_value=-10**12, max_value=10**12).map(str),
                 st.floats(min_value=0, max_value=1e10, allow_nan=False).map(repr)))
def test_a_bare_number_is_refused_not_read_as_epoch_seconds(text: str):
    with pytest.raises(QueryError, match="bare number"):
        parse_time("start", text)
    with pytest.raises(ValidationError, match="bare number"):
        TypeAdapter(QueryTime).validate_python(text)


DAY = datetime(2026, 11, 25, tzinfo=timezone.utc)


@pytest.fixture
async def service_with_keys(fresh_db: str):  # noqa: ANN201 - (client, ingest headers, viewer headers)
    """A service on a fresh database over HTTP, with an ingest key and a viewer key."""
    import httpx

    from urbanpulse.api.app import create_app
    from urbanpulse.auth.keys import KeyStore
    from urbanpulse.auth.roles import Role
    from urbanpulse.config import load_settings
    from urbanpulse.service import IngestService

    s = load_settings(None, database={"dsn": fresh_db}, api={"enabled": False}, detection={"enabled": False},
                      validation={"max_age_s": None})
    service = IngestService(s)
    await service.start()
    try:
        keys = KeyStore(service.pool)
        ingest = (await keys.create("import", Role.ingest)).secret
        viewer = (await keys.create("planner", Role.viewer)).secret
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)),
                                     base_url="http://test", timeout=180) as client:
            yield (client, {"Authorization": f"Bearer {ingest}", "Content-Type": "application/x-ndjson"},
                   {"Authorization": f"Bearer {viewer}"})
    finally:
        await service.stop()


async def _ingest_a_day(client, headers) -> None:
    """One reading a minute of temperature 0..1439 over DAY, so percentiles are known exactly."""
    t0 = int(DAY.timestamp() * 1000)
    body = "\n".join(json.dumps({"sensor_id": "pct-1", "metric": "temperature", "ts": t0 + i * 60_000,
                                 "value": float(i) / 100}) for i in range(1440))
    r = await client.post("/ingest", content=body.encode(), headers=headers)
    assert r.status_code == 200 and r.json()["stored"] == 1440, r.text


@pytest.mark.integration
async def test_readings_percentile_is_a_fraction_and_each_has_its_own_column(service_with_keys):
    client, h, viewer = service_with_keys
    await _ingest_a_day(client, h)
    q = "/readings?sensor=pct-1&metric=temperature&start=2026-11-25&end=2026-11-26&bucket=1d&agg=count"
    for bad in ("1.5", "50", "-0.1", "nan", "0.5,2"):
        r = await client.get(f"{q}&percentile={bad}", headers=viewer)
        assert r.status_code == 422 and "from 0 to 1" in r.text, (bad, r.text)
    r = await client.get(f"{q}&percentile=0,0.000000001,1,0.5", headers=viewer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["columns"] == ["count", "p0", "p0.0000001", "p100", "p50"]
    row = body["items"][0]
    assert row["count"] == 1440 and row["p0"] == 0.0 and row["p100"] == 14.39
    assert 0.0 < row["p0.0000001"] < 1e-5 and row["p50"] == pytest.approx(7.195)


@pytest.mark.integration
async def test_quality_takes_the_time_forms_readings_takes(service_with_keys):
    client, h, viewer = service_with_keys
    await _ingest_a_day(client, h)
    forms = {"2026-11-25": DAY, "2026-11-25T00:00:00": DAY, "2026-11-25T00:00:00Z": DAY,
             "2026-11-25T02:00:00%2B02:00": DAY, "2026-11-25T06:00:00-05:00": DAY + timedelta(hours=11)}
    for text, start in forms.items():
        end = (start + timedelta(days=1)).date().isoformat() if text == "2026-11-25" else "2026-11-26T00:00:00Z"
        quality = await client.get(f"/quality?sensor=pct-1&start={text}&end={end}", headers=viewer)
        assert quality.status_code == 200, (text, quality.text)
        assert datetime.fromisoformat(quality.json()["start"]) == start, text
        readings = await client.get(f"/readings?sensor=pct-1&metric=temperature&start={text}&end={end}&limit=1",
                                    headers=viewer)
        assert readings.status_code == 200, (text, readings.text)
        assert datetime.fromisoformat(readings.json()["query"]["start"]) == start, text
    for bad in ("1764028800", "20261125", "yesterday"):
        for route in ("/quality?sensor=pct-1", "/readings?sensor=pct-1&metric=temperature"):
            r = await client.get(f"{route}&start={bad}", headers=viewer)
            assert r.status_code == 422 and "2024-03-31" in r.text, (route, bad, r.text)

