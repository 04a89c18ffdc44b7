"""A personal reading is accepted or rejected on its position as sent, exactly as the same reading
from an open source, and stored with its coarsened position (benchmarks/README.md ``input35``).

Before: the privacy stage coarsened (or dropped) personal positions before validation, so a
latitude of 90.0004 rounded to 3 decimals became 90.0 and was stored, where an open source's
90.0004 is rejected as ``bad_location``; likewise a longitude just beyond ±180, and with geohash
snapping (which clamps to the grid) any position beyond the bounds, even an infinite one. Now the
stage marks the positions that were invalid as sent before it changes them, and validation rejects
those; the redacted quarantine row still holds only the coarsened position.

Driven through the real pipeline (canonical JSON on a personal topic next to the same readings
from an open station) into PostgreSQL, with the class's precision drawn: decimals, geohash, or
the location dropped.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings, strategies as st

from privacy_pipeline import open_store, personal_pipeline, through
from urbanpulse.pipeline import Pipeline
from urbanpulse.privacy.grid import Grid

EXAMPLES = int(os.environ.get("POSITION_BOUNDS_EXAMPLES", "40"))
KEY = "position-bounds-key-0123456789abc"
NOW_MS = int(time.time() * 1000) - 60_000
PERSONAL, OPEN = "phones/#", "city/station-1"
#: the class's precision: ("decimals", d), ("geohash", length) or ("drop", 0) (drop_fields: [location])
PRECISIONS = [("decimals", d) for d in (0, 1, 2, 3, 4, 6, 8)] + [("geohash", g) for g in (2, 5, 7, 9)] + [("drop", 0)]


def _near(bound: float) -> st.SearchStrategy[float]:
    """Within 0.0005 of ``bound``, either side (the band rounding to 3 decimals folds onto it)."""
    return st.floats(-0.0005, 0.0005).map(lambda d: bound + d)


def _coordinate(bound: float) -> st.SearchStrategy[float | None]:
    return st.one_of(_near(bound), _near(-bound), st.floats(-bound, bound),
                     st.sampled_from([math.nan, math.inf, -math.inf, bound + 1e-9, -bound - 1e-9, bound, -bound]),
                     st.none())


positions = st.tuples(_coordinate(90.0), _coordinate(180.0))


async def _pipeline(pool, parts, precision: tuple[str, int]) -> Pipeline:  # noqa: ANN001
    """A started pipeline of the service's parts, ``phones/#`` personal at ``precision``."""
    kind, level = precision
    policy: dict = {"pseudonymise": True, "position_readings": True, "quarantine_payload": "redact"}
    if kind == "decimals":
        policy["location_decimals"] = level
    elif kind == "geohash":
        policy["location_geohash"] = level
    else:
        policy["drop_fields"] = ["location"]
    return await personal_pipeline(pool, parts, policy, PERSONAL)


def _message(sensor: str, places: list[tuple[float | None, float | None]]) -> bytes:
    """A canonical JSON array, reading k of value 10 + k at ``places[k]`` (NaN/Infinity as JSON5 literals)."""
    items = []
    for k, (lat, lon) in enumerate(places):
        item: dict = {"sensor_id": sensor, "metric": "temperature", "ts": NOW_MS - 1000 * k, "value": 10.0 + k}
        if lat is not None:
            item["lat"] = lat
        if lon is not None:
            item["lon"] = lon
        items.append(item)
    return json.dumps(items, allow_nan=True).encode()


async def _through(pipeline: Pipeline, pool, payloads: list[bytes]) -> tuple[list[dict], list[dict]]:  # noqa: ANN001
    return await through(pipeline, pool, payloads, ["phones/dev-7", OPEN], "s.sensor_id, r.value, r.lat, r.lon")


def _snapped(precision: tuple[str, int], lat: float | None, lon: float | None) -> tuple[float | None, float | None]:
    """The position the class keeps, by the grid's own arithmetic (None: absent or not finite)."""
    kind, level = precision
    if kind == "drop":
        return None, None
    grid = Grid.of(level if kind == "decimals" else None, level if kind == "geohash" else None)
    rlat, rlon = grid.snap(np.array([math.nan if lat is None else lat]), np.array([math.nan if lon is None else lon]))
    return tuple(float(v[0]) if math.isfinite(v[0]) else None for v in (rlat, rlon))  # type: ignore[return-value]


def check_places(loop: asyncio.AbstractEventLoop, pool, parts, pipelines: dict,  # noqa: ANN001
                 precision: tuple[str, int], places: list[tuple[float | None, float | None]]) -> None:
    """The same readings on a personal topic and from an open station through the pipeline into
    PostgreSQL; AssertionError if a decision differs, a reading is lost or kept twice, or a stored
    or quarantined personal position is not the coarsened one."""
    if precision not in pipelines:
        pipelines[precision] = loop.run_until_complete(_pipeline(pool, parts, precision))
    stored, rows = loop.run_until_complete(
        _through(pipelines[precision], pool, [_message("dev-7", places), _message("station-1", places)]))
    mine = {int(r["value"]) - 10: r for r in stored if r["sensor_id"].startswith("psn-")}
    station = {int(r["value"]) - 10: r for r in stored if r["sensor_id"] == "station-1"}
    assert len(mine) + len(station) == len(stored)  # one pseudonym, one station, each reading once
    q_mine = {r["item"]: r for r in rows if r["topic"] == PERSONAL}
    q_station = {r["item"]: r for r in rows if r["topic"] == OPEN}
    assert len(q_mine) + len(q_station) == len(rows)
    for k, (lat, lon) in enumerate(places):
        # each reading stored or quarantined, once; the personal decision is the open one, same reason
        assert (k in mine) != (k in q_mine) and (k in station) != (k in q_station), (k, places, stored, rows)
        assert (k in mine) == (k in station), (precision, lat, lon, stored, rows)
        if k in q_mine:
            assert q_mine[k]["reason"] == q_station[k]["reason"], (precision, lat, lon, rows)
            kept = orjson.loads(bytes(q_mine[k]["payload"]))
            want = _snapped(precision, lat, lon)
            for name, raw, coarse in (("lat", lat, want[0]), ("lon", lon, want[1])):
                # the coarsened position or none: never the raw one (unless coarsening leaves it as it is)
                got = kept.get(name)
                assert got is None or got == coarse, (name, got, raw, coarse, precision)
                if raw is not None and math.isfinite(raw) and raw != coarse and len(repr(raw)) >= 7:
                    assert repr(raw) not in q_mine[k]["detail"] + bytes(q_mine[k]["payload"]).decode()
        if k in mine:
            got = (mine[k]["lat"], mine[k]["lon"])
            assert got == _snapped(precision, lat, lon), (precision, lat, lon, got)
            as_sent = tuple(None if v is None or math.isnan(v) else v for v in (lat, lon))
            assert (station[k]["lat"], station[k]["lon"]) == as_sent, (lat, lon, station[k])


def test_a_personal_position_is_judged_as_sent_and_stored_coarsened(fresh_db: str, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("URBANPULSE_PSEUDONYM_KEY", KEY)
    loop = asyncio.new_event_loop()
    pool, parts = loop.run_until_complete(open_store(fresh_db))
    pipelines: dict[tuple[str, int], Pipeline] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(precision=st.sampled_from(PRECISIONS), places=st.lists(positions, min_size=1, max_size=8))
    def check(precision: tuple[str, int], places: list[tuple[float | None, float | None]]) -> None:
        check_places(loop, pool, parts, pipelines, precision, places)

    try:
        check()
    finally:
        for p in pipelines.values():
            loop.run_until_complete(p.stop())
        loop.run_until_complete(pool.close())
        loop.close()
