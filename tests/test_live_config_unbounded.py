"""``GET /live/config`` with a metric whose range is unbounded (``min: -.inf`` / ``max: .inf``,
which the catalogue allows, e.g. an energy counter): the page's configuration is still served,
as strict JSON, an infinite bound as ``null`` (robust31). Before: the response raised
``ValueError: Out of range float values are not JSON compliant`` (HTTP 500) and the live page
could not start. Real app over HTTP; one test on a running service with the metric configured."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbanpulse.api.app import create_app
from urbanpulse.config import load_settings
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.service import IngestService


def strict(text: str) -> dict:
    """JSON as a browser's JSON.parse reads it: no Infinity or NaN tokens."""
    def refuse(token: str) -> float:
        raise ValueError(f"not JSON: {token}")
    return json.loads(text, parse_constant=refuse)


bounds = st.floats(allow_nan=False, allow_infinity=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bounds, bounds)
async def test_any_metric_range_is_served_as_strict_json(lo: float, hi: float):
    lo, hi = min(lo, hi), max(lo, hi)
    app = create_app(None)
    app.state.catalogue = MetricCatalogue.load(extra={"energy": {"unit": "Wh", "min": lo, "max": hi}})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://test") as client:
        r = await client.get("/live/config")
    assert r.status_code == 200, r.text
    energy = strict(r.text)["metrics"]["energy"]
    assert energy["min"] == (lo if math.isfinite(lo) else None)
    assert energy["max"] == (hi if math.isfinite(hi) else None)


@pytest.fixture
async def service(fresh_db: str) -> AsyncIterator[IngestService]:
    s = load_settings(None, database={"dsn": fresh_db}, api={"enabled": False}, detection={"enabled": False},
                      validation={"metrics": {"energy": {"unit": "Wh", "min": "-inf", "max": "inf"}}})
    svc = IngestService(s)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


@pytest.mark.integration
async def test_the_live_page_config_of_a_service_with_an_unbounded_metric(service):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service), raise_app_exceptions=False),
                                 base_url="http://test") as client:
        r = await client.get("/live/config")
    assert r.status_code == 200, r.text
    body = strict(r.text)
    assert body["metrics"]["energy"] == {"unit": "Wh", "min": None, "max": None}
    assert body["metrics"]["pm2_5"]["min"] == 0  # finite bounds as before


@pytest.mark.parametrize("edges", [[1.0, math.inf], [-math.inf, 2.0], [1.0, math.nan, 3.0], [math.nan]])
def test_a_colour_scale_with_edges_json_cannot_carry_is_refused_at_start_up(edges: list[float]):
    from urbanpulse.errors import ConfigError

    with pytest.raises(ConfigError, match="finite band edges"):
        load_settings(None, live={"scales": {"pm2_5": edges}})
