"""History queries in TimescaleDB mode (the PGlite stand-in, tests/timescale): the same checks
as tests/test_history_query.py against hypertables.

The readings and rollup hypertables are filled by INSERT .. unnest and the writer's ``unnest``
rollup merge (COPY kills the stand-in); queries go through the same HistoryRunner on the one
connection the stand-in takes (``SinglePool``). Hypothesis draws bucket x aggregates x tz x
range; results must equal the pandas recomputation, the rollup path the raw path, and pages
followed by cursor the whole result. Exports use the cursor path (no COPY).
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings

import services
from history_check import (Dataset, SinglePool, all_pages, assert_page_matches, close, insert_without_copy,
                           recompute, stored_frame)
from test_history_query import WINDOWS, generate, queries
from urbanpulse.export.stream import open_export
from urbanpulse.query.plan import rollup_table
from urbanpulse.query.run import HistoryRunner, to_us
from urbanpulse.query.spec import parse_query
from urbanpulse.storage.migrations import migrate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stored(tmp_path_factory):
    async with services.timescale_connection(tmp_path_factory.mktemp("timescale-history")) as conn:
        assert await migrate(conn, "auto") == "timescaledb"
        sensors, ts, vals = generate()
        keep = np.zeros(len(ts), bool)  # a lighter load for the WASM server: the first window only
        keep[(ts >= to_us(WINDOWS[0][0])) & (ts < to_us(WINDOWS[0][1]))] = True
        sensors = [s for s, k in zip(sensors, keep) if k]
        ts, vals = ts[keep], vals[keep]
        await conn.execute("INSERT INTO series (sensor_id, metric) SELECT s, 'pm2_5' FROM unnest($1::text[]) s "
                           "ORDER BY 1", sorted(set(sensors)))
        ids = {r["sensor_id"]: r["id"] for r in await conn.fetch("SELECT id, sensor_id FROM series")}
        sid = np.array([ids[s] for s in sensors], np.int32)
        order = np.argsort(ts, kind="stable")  # in time order: each transaction touches one or two chunks
        await insert_without_copy(conn, sid[order], ts[order], vals[order])  # (more crash the WASM server)
        frame = await stored_frame(conn)
        yield SinglePool(conn), Dataset(ids, frame, float(np.abs(frame.value).max()))


def _first_window(params: dict[str, str]) -> dict[str, str]:
    q = parse_query(params)
    if q.start >= WINDOWS[0][1]:  # queries() also draws the second window; move it onto the first
        shift = WINDOWS[1][0] - WINDOWS[0][0]
        return {**params, "start": (q.start - shift).isoformat(), "end": (q.end - shift).isoformat()}
    return params


async def test_readings_are_hypertables(stored):
    pool, _ = stored
    names = {r[0] for r in await pool.conn.fetch(
        "SELECT hypertable_name FROM timescaledb_information.hypertables")}
    assert {"readings", "rollup_1m", "rollup_1h"} <= names


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(params=queries())
async def test_query_equals_pandas_recomputation_on_timescaledb(stored, params):
    pool, ds = stored
    params = _first_window(params)
    runner = HistoryRunner(pool)
    q = parse_query(params)
    expected = recompute(ds.frame, q, sorted(ds.series[s] for s in q.series.sensors))
    page = await runner.page(q, limit=10_000)
    assert_page_matches(page.rows, page.columns, expected, ds.scale, f"{params} via {page.path} (timescaledb)")
    if not q.percentiles and rollup_table(q, 10**6) is not None:
        assert page.path.startswith("rollup")
        raw = await runner.page(parse_query({**params, "path": "raw"}), limit=10_000)
        assert_page_matches(raw.rows, raw.columns, expected, ds.scale, f"{params} via raw (timescaledb)")


async def test_pages_and_cursor_export_on_timescaledb(stored):
    pool, ds = stored
    runner = HistoryRunner(pool)
    params = {"sensor": "hq-a,hq-b", "start": "2024-03-30T20:00:00Z", "end": "2024-04-01T04:00:00Z",
              "bucket": "1h", "agg": "count,mean,stddev,last", "tz": "Europe/London", "fill": "previous"}
    q = parse_query(params)
    whole = await runner.page(q, limit=10_000)
    rows, _ = await all_pages(runner, q, 7)
    assert [(r[0], r[1], r[3]) for r in rows] == [(r[0], r[1], r[3]) for r in whole.rows]
    for got, want in zip(rows, whole.rows):
        assert all(close(a, b, ds.scale * 100) for a, b in zip(got[2], want[2]))
    ex = await open_export(runner, q, "parquet", chunk_rows=10, use_copy=False)
    buf = io.BytesIO()
    async for chunk in ex.chunks:
        buf.write(chunk)
    table = pq.read_table(io.BytesIO(buf.getvalue()))
    assert table.num_rows == len(whole.rows) == 2 * 32
    assert table.column("filled").to_pylist() == [r[3] for r in whole.rows]
    readings = parse_query({"sensor": "hq-c", "start": "2024-03-31T00:00:00Z", "end": "2024-03-31T05:00:00Z"})
    rows, path = await all_pages(runner, readings, 5)
    f = ds.frame[(ds.frame.series_id == ds.series["hq-c"]) & (ds.frame.ts_us >= to_us(readings.start))
                 & (ds.frame.ts_us < to_us(readings.end))]
    assert path == "readings" and [(b, v[0]) for _, b, v, _ in rows] == list(zip(f.ts_us, f.value))
