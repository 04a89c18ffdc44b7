"""The default history page (``shape=items``) written column by column equals the one built row by row.

:func:`urbanpulse.api.page_json.items_body` assembles the JSON bytes from per-column orjson
output (no Python object per row); :func:`~urbanpulse.api.page_json.page_objects` builds one
dict per row, the reference. Hypothesis generates pages of every kind the route serves:
readings or buckets, aggregates and percentiles, a non-UTC zone (the ``local`` column), gap
filling (rows with ``filled``), one or several series with ids that need escaping, values
including NaN, infinities, nulls, extremes and integers, and an optional cursor. The bytes
must be identical, so clients see no difference. (Over HTTP, tests/test_history_query.py
checks both shapes against each other and against a recomputation.)
"""

from __future__ import annotations

import json
import math

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from urbanpulse.api.page_json import items_body, page_objects
from urbanpulse.query.run import Page, value_columns
from urbanpulse.query.spec import parse_query
from urbanpulse.registry.select import SeriesInfo

_floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6).map(float),
                    st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 1.7976931348623157e308, 1e16, 0.1]))
_AGGS = ["count", "min", "max", "mean", "sum", "stddev", "first", "last"]


@st.composite
def pages(draw: st.DrawFn) -> Page:
    bucket = draw(st.sampled_from([None, "1m", "1h", "1d", "month"]))
    params = {"sensor": "x", "start": "2024-03-30T00:00:00Z", "end": "2024-04-02T00:00:00Z"}
    if bucket is not None:
        params["bucket"] = bucket
        params["agg"] = ",".join(draw(st.lists(st.sampled_from(_AGGS), min_size=1, max_size=4, unique=True)))
        if draw(st.booleans()):
            params["percentile"] = ",".join(str(p) for p in draw(st.lists(st.sampled_from([0.25, 0.5, 0.9]),
                                                                            min_size=1, max_size=2, unique=True)))
        params["tz"] = draw(st.sampled_from(["UTC", "Europe/London", "Asia/Kolkata"]))
        if draw(st.booleans()):
            params["fill"] = draw(st.sampled_from(["null", "previous", "linear"]))
    q = parse_query(params)
    names = draw(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=3, unique=True))
    series = [SeriesInfo(series_id=10 + 7 * i, sensor_id=name, metric=draw(st.sampled_from(["pm2_5", 'a"b\\c', "ü"])),
                         unit=None, lat=None, lon=None, elevation=None, area=None, name=None, licence=None,
                         data_class=None, interval_s=None, registered=False) for i, name in enumerate(names)]
    columns = value_columns(q)
    n_pct = len(q.percentiles) if bucket is not None else 0
    n_plain = len(columns) - n_pct
    keys = draw(st.lists(st.tuples(st.sampled_from([s.series_id for s in series]),
                                   st.integers(1_711_756_800_000_000, 1_712_016_000_000_000)), max_size=25))
    keys.sort()
    rows = []
    for sid, at in keys:
        if bucket is None:
            vals = (draw(_floats), draw(st.integers(0, 2**15 - 1)))
        else:
            vals = tuple(draw(st.integers(0, 2**62)) if c == "count" else draw(_floats) for c in columns[:n_plain])
            vals += tuple(draw(_floats) for _ in range(n_pct))
        rows.append((sid, at, vals))
    cursor = draw(st.one_of(st.none(), st.text(max_size=12)))
    if q.fill:
        filled = [(sid, at, vals, draw(st.booleans())) for sid, at, vals in rows]
        return Page(q, series, "rollup_1h", columns, filled, cursor)
    # as the database returns them: series, time, the aggregates, the percentiles as one array
    records = [(sid, at, *vals[:n_plain], *([list(vals[n_plain:])] if n_pct else [])) for sid, at, vals in rows]
    return Page(q, series, "readings" if bucket is None else "raw", columns, None, cursor, records)


@settings(max_examples=400, deadline=None)
@given(page=pages())
def test_items_body_equals_the_row_objects(page: Page):
    body = items_body(page)
    assert body == orjson.dumps(page_objects(page))
    parsed = json.loads(body)  # valid JSON, one item per row
    assert len(parsed["items"]) == len(page.records if page.records is not None else page.rows)


def test_a_year_of_hourly_means():
    """The benchmark's page, (a): one series, 8,760 rows, values with and without fractions."""
    q = parse_query({"sensor": "bench-0005", "start": "2023-01-01", "end": "2024-01-01", "bucket": "1h",
                     "agg": "mean"})
    series = [SeriesInfo(6, "bench-0005", "pm2_5", "ug/m3", 39.9, 116.4, None, "area-0", "Bench 5", "CC-BY-4.0",
                         "open", 3153.6, True)]
    start = 1_672_531_200_000_000
    records = [(6, start + h * 3_600_000_000, math.nan if h == 5 else (h % 97) / 7 if h % 3 else float(h))
               for h in range(8760)]
    page = Page(q, series, "rollup_1h", value_columns(q), None, None, records)
    body = items_body(page)
    assert body == orjson.dumps(page_objects(page))
    items = json.loads(body)["items"]
    assert items[0] == {"sensor_id": "bench-0005", "metric": "pm2_5", "bucket": "2023-01-01T00:00:00Z", "mean": 0.0}
    assert items[5]["mean"] is None and len(items) == 8760
