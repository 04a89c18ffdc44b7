"""History queries equal a pandas recomputation over the stored readings (plain PostgreSQL).

Readings go in through the real writer (binary COPY + rollup merge), around the daylight-saving
changes of Europe/London (2024-03-31, 2024-10-27), Australia/Adelaide (2024-04-07) and
America/New_York (2024-11-03), over month ends. Hypothesis draws the query: bucket x aggregates
x tz (incl. the half-hour offsets of Asia/Kolkata and Adelaide) x range x path; every result is
compared with the recomputation, the rollup path with the raw path, and pages (followed by
cursor) with the whole result.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

import services
from history_check import Dataset, all_pages, assert_page_matches, close, recompute, stored_frame, utc
from readings import readings_columns
from urbanpulse.query.errors import QueryError, QueryTooLarge, UnknownSeries
from urbanpulse.query.plan import rollup_table
from urbanpulse.query.run import HistoryRunner, QueryLimits, RollupAvailability, to_us
from urbanpulse.query.spec import parse_query
from urbanpulse.registry.model import SensorIn
from urbanpulse.registry.store import save_sensor
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore

pytestmark = pytest.mark.integration

SENSORS = ["hq-a", "hq-b", "hq-c"]
WINDOWS = [(utc(2024, 3, 27), utc(2024, 4, 9)), (utc(2024, 10, 24), utc(2024, 11, 5))]
ZONES = ["UTC", "Europe/London", "Asia/Kolkata", "Australia/Adelaide", "America/New_York"]
BUCKETS = ["1m", "5m", "15m", "30m", "1h", "3h", "6h", "12h", "1d", "month"]
AGGS = ["count", "min", "max", "mean", "sum", "stddev", "first", "last"]


def generate(seed: int = 11) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every sensor about every 7 minutes (jittered) in both windows; gaps of a few hours."""
    rng = np.random.default_rng(seed)
    sensors, ts, vals = [], [], []
    for k, s in enumerate(SENSORS):
        for lo, hi in WINDOWS:
            t = np.arange(to_us(lo), to_us(hi), 420_000_000, dtype=np.int64)
            t = t + rng.integers(0, 400_000_000, len(t))
            keep = rng.random(len(t)) > 0.05
            hole = (t % (86_400_000_000 * (3 + k))) < 4 * 3_600_000_000  # a gap every few days
            t = t[keep & ~hole]
            base = [12.0, 1013.0, -3.0][k]
            v = base + np.cumsum(rng.normal(0, 0.3, len(t))) + rng.normal(0, 0.05, len(t))
            sensors += [s] * len(t)
            ts.append(t)
            vals.append(np.round(v, 3))
    return sensors, np.concatenate(ts), np.concatenate(vals)


@pytest.fixture(scope="module")
async def stored(pg_dsn):
    async with services.migrated_pool(pg_dsn, min_size=1, max_size=3) as pool:
        store = ReadingStore(pool, MonthlyPartitions())
        sensors, ts, vals = generate()
        order = np.random.default_rng(3).permutation(len(ts))  # arrival order unrelated to time
        for i in range(0, len(order), 4000):
            idx = order[i:i + 4000]
            cols = readings_columns([sensors[j] for j in idx], ["pm2_5"] * len(idx), ts[idx], vals[idx])
            await store.write(cols, [], "replay")
        async with pool.acquire() as c:
            for sensor_id, cls in (("hq-a", "open"), ("hq-b", "restricted")):  # hq-c stays unregistered
                await save_sensor(c, SensorIn(id=sensor_id, name=sensor_id, lat=51.5, lon=-0.12, area="north",
                                              data_class=cls, licence="CC-BY-4.0", tags=["roadside"],
                                              metrics={"pm2_5": {"unit": "ug/m3", "interval_s": 420}}))
            frame = await stored_frame(c)
            series = {r["sensor_id"]: r["id"] for r in await c.fetch("SELECT id, sensor_id FROM series")}
        yield pool, Dataset(series, frame, float(np.abs(frame.value).max()))


@st.composite
def queries(draw) -> dict[str, str]:
    lo, hi = draw(st.sampled_from(WINDOWS))
    span_h = int((hi - lo).total_seconds() // 3600)
    aligned = draw(st.sampled_from(["hour", "minute", "second"]))
    unit = {"hour": 3600, "minute": 60, "second": 1}[aligned]
    start_s = draw(st.integers(-24 * 3600, (span_h - 2) * 3600)) // unit * unit
    length_s = draw(st.integers(unit, 14 * 86400)) // unit * unit
    start = lo + timedelta(seconds=start_s)
    bucket = draw(st.sampled_from(BUCKETS))
    if bucket in ("1m", "5m", "15m"):  # keep the reference cheap: at most ~2 days of minute buckets
        length_s = min(length_s, 2 * 86400)
    aggs = draw(st.lists(st.sampled_from(AGGS), min_size=1, max_size=8, unique=True))
    pct = draw(st.lists(st.sampled_from(["p50", "p90", "p95", "p99"]), max_size=2, unique=True))
    sensors = draw(st.lists(st.sampled_from(SENSORS), min_size=1, max_size=3, unique=True))
    return {"sensor": ",".join(sensors), "start": start.isoformat(),
            "end": (start + timedelta(seconds=length_s)).isoformat(), "bucket": bucket,
            "agg": ",".join(aggs + pct), "tz": draw(st.sampled_from(ZONES))}


def _expected(ds: Dataset, q):
    ids = sorted(ds.series[s] for s in q.series.sensors)
    return recompute(ds.frame, q, ids)


# no shrinking: each example queries the database; a failure prints its seed and parameters
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(params=queries())
async def test_query_equals_pandas_recomputation(stored, params):
    pool, ds = stored
    runner = HistoryRunner(pool)
    q = parse_query(params)
    expected = _expected(ds, q)
    page = await runner.page(q, limit=10_000)
    assert page.next_cursor is None or len(expected) > 10_000
    assert_page_matches(page.rows, page.columns, expected, ds.scale, f"{params} via {page.path}")
    if not q.percentiles and rollup_table(q, 10**6) is not None:
        assert page.path.startswith("rollup")
        raw = await runner.page(parse_query({**params, "path": "raw"}), limit=10_000)
        assert raw.path == "raw"
        assert_page_matches(raw.rows, raw.columns, expected, ds.scale, f"{params} via raw")


_generated = iter(range(10**6))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(readings=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4 * 86400 - 1), st.integers(0, 999_999),
                                   st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)),
                         min_size=1, max_size=300),
       day=st.sampled_from(["2024-10-26T00:00:00Z", "2024-03-30T00:00:00Z", "2024-04-06T00:00:00Z"]),
       query=st.tuples(st.sampled_from(BUCKETS), st.sampled_from(ZONES),
                       st.lists(st.sampled_from(AGGS + ["p50", "p90"]), min_size=1, max_size=5, unique=True)))
# tiny values: their squares and quotients are below float8's range, which PostgreSQL refuses
# ("value out of range: underflow") instead of rounding to 0
@example(readings=[(0, 60, 0, 1e-200), (0, 180, 0, 3e-200), (0, 7200, 5, 5e-324), (1, 60, 0, -1e-310),
                   (1, 61, 0, 2e-310)],
         day="2024-10-26T00:00:00Z", query=("12h", "Asia/Kolkata", ["mean", "stddev", "sum"]))
async def test_generated_readings_equal_the_recomputation(stored, readings, day, query):
    """Readings drawn by hypothesis (four series over four days around a DST change, values of any
    sign and scale, several per minute or none for hours) go in through the writer; a drawn
    bucket x zone x aggregates query over the whole stretch equals pandas, rollup path = raw path."""
    pool, _ = stored
    bucket, tz, aggs = query
    tag = f"gen{next(_generated)}-{abs(hash((day, len(readings)))) % 10**6}"
    base = to_us(parse_query({"sensor": "x", "start": day}).start)
    seen = {}
    for k, s_, us, v in readings:
        seen[(k, base + s_ * 1_000_000 + us % 1_000_000)] = v  # one value per (series, time): the key
    keys = sorted(seen)
    store = ReadingStore(pool, MonthlyPartitions())
    await store.write(readings_columns([f"{tag}-{k}" for k, _ in keys], ["pm2_5"] * len(keys),
                                       np.array([t for _, t in keys], np.int64), np.array([seen[x] for x in keys])),
                      [], "replay")
    sensors = sorted({f"{tag}-{k}" for k, _ in keys})
    async with pool.acquire() as c:
        ids = {r["sensor_id"]: r["id"] for r in await c.fetch(
            "SELECT id, sensor_id FROM series WHERE sensor_id = ANY($1::text[])", sensors)}
        frame = await stored_frame(c)
    frame = frame[frame.series_id.isin(ids.values())]
    scale = float(np.abs(frame.value).max()) or 1.0
    start = parse_query({"sensor": "x", "start": day}).start - timedelta(days=1)
    params = {"sensor": ",".join(sensors), "start": start.isoformat(),
              "end": (start + timedelta(days=6)).isoformat(), "bucket": bucket, "tz": tz, "agg": ",".join(aggs)}
    q = parse_query(params)
    expected = recompute(frame, q, sorted(ids.values()))
    runner = HistoryRunner(pool)
    page = await runner.page(q, limit=10_000)
    assert_page_matches(page.rows, page.columns, expected, scale, f"{params} via {page.path}")
    if page.path.startswith("rollup"):
        raw = await runner.page(parse_query({**params, "path": "raw"}), limit=10_000)
        assert_page_matches(raw.rows, raw.columns, expected, scale, f"{params} via raw")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(params=queries(), limit=st.integers(1, 97), fill=st.sampled_from([None, "null", "previous", "linear"]))
async def test_pages_return_every_row_exactly_once(stored, params, limit, fill):
    pool, ds = stored
    runner = HistoryRunner(pool)
    params = {**params, "agg": "count,mean,last"}
    if fill:
        params["fill"] = fill
    q = parse_query(params)
    whole = await runner.page(q, limit=10_000)
    if whole.next_cursor is not None or len(whole.rows) > 3000:
        return  # keep each example quick
    rows, _ = await all_pages(runner, q, limit)
    assert [(r[0], r[1], r[3]) for r in rows] == [(r[0], r[1], r[3]) for r in whole.rows]
    for got, want in zip(rows, whole.rows):  # a page may sum in another order: float tolerance
        assert all(close(a, b, ds.scale * 100) for a, b in zip(got[2], want[2])), (got, want)
    keys = [(r[0], r[1]) for r in rows]
    assert len(keys) == len(set(keys)) and keys == sorted(keys)


@pytest.mark.parametrize("tz,day,hours", [
    ("Europe/London", "2024-03-31", 23), ("Europe/London", "2024-10-27", 25),
    ("America/New_York", "2024-11-03", 25), ("Australia/Adelaide", "2024-04-07", 25),
])
async def test_daylight_saving_days_are_local_calendar_days(stored, tz, day, hours):
    pool, ds = stored
    runner = HistoryRunner(pool)
    params = {"sensor": "hq-a", "start": f"{day}T00:00:00Z", "end": f"{day}T00:00:00Z", "bucket": "1d",
              "agg": "count,mean,stddev,first,last", "tz": tz}
    params["start"] = (parse_query({**params, "end": "2030-01-01"}).start - timedelta(days=2)).isoformat()
    params["end"] = (parse_query({**params, "end": "2030-01-01"}).start + timedelta(days=4)).isoformat()
    q = parse_query(params)
    page = await runner.page(q)
    starts = [b for _, b, _, _ in page.rows]
    lengths = {(starts[i + 1] - starts[i]) // 3_600_000_000 for i in range(len(starts) - 1)}
    assert hours in lengths, (lengths, tz, day)
    assert_page_matches(page.rows, page.columns, _expected(ds, q), ds.scale, str(params))


async def test_half_hour_zone_hourly_buckets_start_on_the_local_hour(stored):
    pool, ds = stored
    q = parse_query({"sensor": "hq-b", "start": "2024-03-28T00:30:00Z", "end": "2024-03-29T00:30:00Z",
                     "bucket": "1h", "agg": "count,mean,stddev", "tz": "Asia/Kolkata"})
    page = await HistoryRunner(pool).page(q)
    assert page.path == "rollup_1m"  # :30 UTC boundaries: the hourly table cannot answer it
    assert all(b % 3_600_000_000 == 1_800_000_000 for _, b, _, _ in page.rows)
    assert_page_matches(page.rows, page.columns, _expected(ds, q), ds.scale, "kolkata hourly")


async def test_gap_filling_null_previous_linear(stored):
    pool, ds = stored
    base = {"sensor": "hq-a", "start": "2024-03-28T00:00:00Z", "end": "2024-03-28T04:00:00Z", "bucket": "5m",
            "agg": "count,mean"}
    runner = HistoryRunner(pool)
    plain = await runner.page(parse_query(base))
    stored_rows = {b: vals for _, b, vals, _ in plain.rows}
    grid = list(range(to_us(utc(2024, 3, 28)), to_us(utc(2024, 3, 28, 4)), 300_000_000))
    assert len(stored_rows) < len(grid)  # the data has empty quarters to fill
    for fill in ("null", "previous", "linear"):
        page = await runner.page(parse_query({**base, "fill": fill}))
        assert [b for _, b, _, _ in page.rows] == grid
        real = [(b, v) for _, b, v, filled in page.rows if not filled]
        assert dict(real) == stored_rows
        for i, (_, b, (count, mean), filled) in enumerate(page.rows):
            if not filled:
                continue
            assert count == 0
            before = [(t, v) for t, v in real if t < b]
            after = [(t, v) for t, v in real if t > b]
            if fill == "null" or not before or (fill == "linear" and not after):
                assert mean is None
            elif fill == "previous":
                assert mean == before[-1][1][1]
            else:
                (t0, v0), (t1, v1) = before[-1], after[0]
                assert mean == pytest.approx(v0[1] + (v1[1] - v0[1]) * (b - t0) / (t1 - t0))


async def test_readings_without_bucket_page_in_key_order(stored):
    pool, ds = stored
    q = parse_query({"sensor": "hq-a,hq-c", "start": "2024-03-30T00:00:00Z", "end": "2024-03-30T06:00:00Z"})
    rows, path = await all_pages(HistoryRunner(pool), q, 17)
    assert path == "readings"
    f = ds.frame
    ids = sorted([ds.series["hq-a"], ds.series["hq-c"]])
    sel = f[f.series_id.isin(ids) & (f.ts_us >= to_us(q.start)) & (f.ts_us < to_us(q.end))]
    assert [(s, b, v[0]) for s, b, v, _ in rows] == list(zip(sel.series_id, sel.ts_us, sel.value))


async def test_limits_answer_with_what_to_narrow(stored):
    pool, ds = stored
    small = HistoryRunner(pool, QueryLimits(max_series=2, max_buckets=1000, max_scan_readings=100,
                                            max_page_rows=50))
    with pytest.raises(QueryTooLarge, match="more than the limit of 2"):
        await small.page(parse_query({"metric": "pm2_5", "start": "2024-03-28", "end": "2024-03-29",
                                      "bucket": "1h"}))
    with pytest.raises(QueryTooLarge, match="wider bucket"):
        await small.page(parse_query({"sensor": "hq-a", "start": "2024-03-28", "end": "2024-04-08",
                                      "bucket": "1m"}))
    with pytest.raises(QueryTooLarge, match="stored readings"):
        await small.page(parse_query({"sensor": "hq-a", "start": "2024-03-28", "end": "2024-04-08",
                                      "bucket": "1d", "agg": "p50"}))
    with pytest.raises(QueryError, match="1..50"):
        await small.page(parse_query({"sensor": "hq-a", "start": "2024-03-28", "end": "2024-03-29"}), limit=51)
    with pytest.raises(UnknownSeries):
        await small.page(parse_query({"sensor": "nope", "start": "2024-03-28", "end": "2024-03-29"}))
    slow = HistoryRunner(pool, QueryLimits(statement_timeout_s=0.001))
    from urbanpulse.query.errors import QueryTimeout
    with pytest.raises(QueryTimeout, match="narrow it"):
        await slow.page(parse_query({"sensor": "hq-a,hq-b,hq-c", "start": "2024-03-01", "end": "2024-12-01",
                                     "bucket": "1d", "agg": "p50,p90", "path": "raw"}))
    other = parse_query({"sensor": "hq-b", "start": "2024-03-28", "end": "2024-03-29"})
    page = await HistoryRunner(pool).page(parse_query({"sensor": "hq-a", "start": "2024-03-28",
                                                       "end": "2024-03-29"}), limit=3)
    with pytest.raises(QueryError, match="different query"):
        await HistoryRunner(pool).page(other, cursor=page.next_cursor)


# -- over HTTP -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def client(stored):
    import httpx

    from urbanpulse.api.access import AccessPolicy
    from urbanpulse.api.app import build_app
    from urbanpulse.auth.keys import KeyStore

    pool, _ = stored
    keys = KeyStore(pool)
    viewer = (await keys.create("history tests", "viewer")).secret
    app = build_app(AccessPolicy(open_data=True), keys=keys, service=type("Svc", (), {"pool": pool})())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                 headers={"Authorization": f"Bearer {viewer}"}) as c:
        yield c


async def test_http_history_pages_equal_the_recomputation(stored, client):
    pool, ds = stored
    params = {"sensor": "hq-a,hq-b", "start": "2024-10-26T00:00:00Z", "end": "2024-10-29T00:00:00Z",
              "bucket": "1d", "agg": "count,mean,stddev,p90", "tz": "Europe/London", "limit": "2"}
    items, cursor = [], None
    while True:
        r = await client.get("/readings", params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert body["query"]["path"] == "raw" and body["query"]["columns"] == ["count", "mean", "stddev", "p90"]
    q = parse_query({k: v for k, v in params.items() if k != "limit"})
    expected = _expected(ds, q)
    ids = {"hq-a": ds.series["hq-a"], "hq-b": ds.series["hq-b"]}
    rows = [(ids[i["sensor_id"]], to_us(parse_query({"sensor": "x", "start": i["bucket"]}).start),
             (i["count"], i["mean"], i["stddev"], i["p90"]), False) for i in items]
    assert_page_matches(rows, ("count", "mean", "stddev", "p90"), expected, ds.scale, "http")
    assert items[0]["local"].endswith("+01:00") and items[-1]["local"].endswith("+00:00")
    assert items[0]["bucket"] == "2024-10-25T23:00:00Z"  # local midnight of the 26th, BST


def _items_of(body: dict) -> list[dict]:
    """The rows of a ``shape=columns`` page rebuilt as the default shape's objects."""
    cols, series = body["columns"], body["series"]
    time_key = "bucket" if "bucket" in cols else "ts"
    names = [n for n in cols if n != "series"]
    out = []
    for i, idx in enumerate(cols["series"]):
        item = {"sensor_id": series[idx]["sensor_id"], "metric": series[idx]["metric"]}
        item.update({n: cols[n][i] for n in names})
        out.append(item)
    assert all(len(cols[n]) == len(cols["series"]) for n in cols) and time_key in names
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(params=queries(), fill=st.sampled_from([None, "null", "previous", "linear"]), limit=st.integers(1, 3000),
       readings=st.booleans())
async def test_http_columns_shape_equals_the_items_shape(client, params, fill, limit, readings):
    """Every page (first three, following the cursor) carries the same rows in both shapes."""
    params = {**params, "limit": str(limit), **({"fill": fill} if fill else {})}
    if readings:  # no bucket: the readings themselves
        params = {k: v for k, v in params.items() if k not in ("bucket", "agg", "tz", "fill")}
    cursor = None
    for _ in range(3):
        page = {**params, **({"cursor": cursor} if cursor else {})}
        items = await client.get("/readings", params=page)
        columns = await client.get("/readings", params={**page, "shape": "columns"})
        assert items.status_code == columns.status_code, (items.text[:300], columns.text[:300])
        if items.status_code != 200:
            assert items.json() == columns.json()
            return
        a, b = items.json(), columns.json()
        assert a["query"] == b["query"] and a["series"] == b["series"] and a["next_cursor"] == b["next_cursor"]
        assert _items_of(b) == a["items"]
        cursor = a["next_cursor"]
        if cursor is None:
            return


async def test_http_errors_say_what_to_change(client):
    r = await client.get("/readings", params={"sensor": "hq-a", "start": "2024-03-28", "bucket": "7m"})
    assert r.status_code == 422 and "bucket" in r.json()["detail"]  # the document lists the widths
    r = await client.get("/readings", params={"sensor": "hq-a", "start": "2024-03-28", "tz": "Mars/Olympus"})
    assert r.status_code == 422 and "IANA" in r.json()["detail"]
    r = await client.get("/readings", params={"sensor": "hq-a", "start": "2024-03-28", "colour": "red"})
    assert r.status_code == 422 and "colour" in r.json()["detail"]
    r = await client.get("/readings", params={"sensor": "nope", "start": "2024-03-28"})
    assert r.status_code == 404
    r = await client.get("/readings", params={"sensor": "hq-a", "start": "2024-03-28", "limit": "100000"})
    assert r.status_code == 422 and "less than or equal to 10000" in r.json()["detail"]
    r = await client.get("/readings/export", params={"sensor": "hq-a", "start": "2024-03-28", "format": "xls"})
    assert r.status_code == 422 and "parquet" in r.json()["detail"]


async def test_http_latest_reading_per_metric(stored, client):
    _, ds = stored
    r = await client.get("/sensors/hq-c/latest")
    assert r.status_code == 200
    (reading,) = r.json()["readings"]
    f = ds.frame[ds.frame.series_id == ds.series["hq-c"]]
    assert reading["metric"] == "pm2_5" and reading["value"] == f.value.iloc[-1]
    assert (await client.get("/sensors/nope/latest")).status_code == 404


async def test_area_selection_metadata_and_open_data_scope(stored, client):
    params = {"area": "north", "start": "2024-03-28T00:00:00Z", "end": "2024-03-28T03:00:00Z", "bucket": "1h"}
    body = (await client.get("/readings", params=params)).json()
    assert [s["sensor_id"] for s in body["series"]] == ["hq-a", "hq-b"]
    assert body["series"][0]["unit"] == "ug/m3" and body["series"][0]["licence"] == "CC-BY-4.0"
    assert {i["sensor_id"] for i in body["items"]} == {"hq-a", "hq-b"}
    key = client.headers.pop("Authorization")  # anonymous: the open-data scope
    try:
        r = await client.get("/readings", params=params)
        assert r.status_code == 200, r.text
        assert {i["sensor_id"] for i in r.json()["items"]} == {"hq-a"}  # restricted and unregistered left out
        r = await client.get("/readings", params={**params, "sensor": "hq-c", "area": ""})
        assert r.status_code == 404
        assert (await client.get("/sensors/hq-b/latest")).status_code == 404
        assert (await client.get("/sensors/hq-a/latest")).status_code == 200
        r = await client.get("/readings/export", params={**params, "format": "csv", "sensor": "hq-b"})
        assert r.status_code == 404
    finally:
        client.headers["Authorization"] = key


async def test_rollups_off_cut_by_retention_or_not_kept_for_a_series_fall_back_to_the_readings(stored):
    pool, ds = stored
    params = {"sensor": "hq-c", "start": "2024-03-28T00:00:00Z", "end": "2024-03-31T00:00:00Z", "bucket": "1h",
              "agg": "count,mean,stddev,first"}
    q = parse_query(params)
    expected = _expected(ds, q)
    assert (await HistoryRunner(pool).page(q)).path == "rollup_1h"
    month = timedelta(days=30)
    for rollups in (RollupAvailability(enabled=False),  # database.rollups.enabled: false
                    RollupAvailability(keep={"rollup_1d": month, "rollup_1h": month, "rollup_1m": month})):
        page = await HistoryRunner(pool, rollups=rollups).page(q)
        assert page.path == "raw"
        assert_page_matches(page.rows, page.columns, expected, ds.scale, f"{rollups}")
    # a slow series keeps only the daily level (the level policy, docs/rollups.md)
    sid = ds.series["hq-c"]
    async with pool.acquire() as c:
        await c.execute("INSERT INTO rollup_series (series_id, finest_us, interval_s, source) "
                        "VALUES ($1, $2, 420, 'configured')", sid, 86_400_000_000)
    try:
        runner = HistoryRunner(pool)
        page = await runner.page(q)
        assert page.path == "raw"
        assert_page_matches(page.rows, page.columns, expected, ds.scale, "only rollup_1d kept")
        daily = parse_query({**params, "bucket": "1d"})
        page = await runner.page(daily)
        assert page.path == "rollup_1d"
        assert_page_matches(page.rows, page.columns, _expected(ds, daily), ds.scale, "daily from rollup_1d")
        with pytest.raises(QueryError, match=r"series keep over the range \(rollup_1d\): rollup_1d cannot split its days"):
            await runner.page(parse_query({**params, "path": "rollup"}))
    finally:
        async with pool.acquire() as c:
            await c.execute("DELETE FROM rollup_series WHERE series_id = $1", sid)
