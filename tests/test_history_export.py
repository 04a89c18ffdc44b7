"""Exports: CSV, NDJSON and Parquet read back equal the query; memory stays flat with size.

A million readings (20 sensors x 50,000, stored through the real writer) are exported by
``tests/export_probe.py`` in a subprocess, as CSV and as Parquet; each file is read back with
pandas/pyarrow and compared with the stored readings, and the subprocess' peak RSS for the
million rows is compared with its peak for 100,000 rows of the same shape.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import numpy as np
import orjson
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import services
from history_check import stored_frame
from readings import readings_columns
from urbanpulse.export import source
from urbanpulse.export.source import copy_groups
from urbanpulse.export.stream import open_export
from urbanpulse.query.run import HistoryRunner, to_us
from urbanpulse.query.spec import parse_query
from urbanpulse.registry.model import SensorIn
from urbanpulse.registry.store import save_sensor
from urbanpulse.storage.migrations import migrate
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore, prepare_connection

pytestmark = pytest.mark.integration

PROBE = Path(__file__).resolve().parent / "export_probe.py"
N = 1_000_000
SENSORS = 20
BASE_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
FULL = {"metric": "pm2_5", "start": "2024-01-01T00:00:00Z", "end": "2024-02-01T00:00:00Z"}
TENTH = {**FULL, "end": "2024-01-01T13:53:20Z"}  # 100,000 readings: 5,000 per sensor
MEMORY_SLACK_KB = 8 * 1024


@pytest.fixture(scope="module")
async def million(pg_dsn):
    name, dsn = services.create_database(pg_dsn)
    try:
        c = await asyncpg.connect(dsn)
        await migrate(c, "postgres")
        await save_sensor(c, SensorIn(id="ex-00", name="Export test 0", lat=51.5, lon=-0.12, licence="CC-BY-4.0",
                                      metrics={"pm2_5": {"unit": "ug/m3", "interval_s": 10}}))
        await c.close()
        loader = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=prepare_connection)
        store = ReadingStore(loader, MonthlyPartitions())
        rng = np.random.default_rng(5)
        for i in range(0, N, 100_000):
            k = np.arange(i, i + 100_000)
            ts = BASE_US + (k // SENSORS) * 10_000_000 + (k % SENSORS) * 1000 + rng.integers(0, 999, len(k))
            vals = np.round(rng.normal(20, 6, len(k)), 4) + rng.random(len(k)) * 1e-9  # full float digits
            await store.write(readings_columns([f"ex-{j % SENSORS:02d}" for j in k], ["pm2_5"] * len(k), ts, vals),
                              [], "replay")
        await store.close()  # its rollups written, its timer stopped
        await loader.close()
        # the tests' pool is the exports' alone (one connection open, room for the read-ahead one)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=prepare_connection)
        async with pool.acquire() as c:
            await c.execute("ANALYZE")
            frame = await stored_frame(c)
            names = {r["id"]: r["sensor_id"] for r in await c.fetch("SELECT id, sensor_id FROM series")}
        frame["sensor_id"] = frame.series_id.map(names)
        yield dsn, pool, frame
        await pool.close()
    finally:
        services.drop_database(name, pg_dsn)


def probe(dsn: str, fmt: str, out: Path, params: dict[str, str]) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    res = subprocess.run([sys.executable, str(PROBE), dsn, fmt, str(out), *(f"{k}={v}" for k, v in params.items())],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def expected(frame: pd.DataFrame, params: dict[str, str]) -> pd.DataFrame:
    q = parse_query(params)
    f = frame[(frame.ts_us >= to_us(q.start)) & (frame.ts_us < to_us(q.end))]
    return f.sort_values(["series_id", "ts_us"]).reset_index(drop=True)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_million_readings_export_reads_back_equal_with_flat_memory(million, tmp_path, fmt):
    dsn, _, frame = million
    small = probe(dsn, fmt, tmp_path / f"small.{fmt}", TENTH)
    big = probe(dsn, fmt, tmp_path / f"big.{fmt}", FULL)
    assert small["rows"] == 100_000 and big["rows"] == N

    want = expected(frame, FULL)
    assert len(want) == N
    path = tmp_path / f"big.{fmt}"
    if fmt == "csv":
        got = pd.read_csv(path, comment="#")
        assert list(got.columns) == ["sensor_id", "metric", "ts_utc", "value", "flags"]
        got_us = pd.to_datetime(got.ts_utc, utc=True).astype("datetime64[us, UTC]").astype("int64").to_numpy()
        head = path.read_text()[:4000]
        assert '"unit":"ug/m3"' in head and '"licence":"CC-BY-4.0"' in head and '"lat":51.5' in head
    else:
        table = pq.read_table(path)
        got = table.to_pandas()
        got_us = got.ts.astype("datetime64[us, UTC]").astype("int64").to_numpy()
        meta = orjson.loads(table.schema.metadata[b"urbanpulse"])
        ex00 = next(s for s in meta["series"] if s["sensor_id"] == "ex-00")
        assert (ex00["unit"], ex00["licence"], ex00["lat"], ex00["lon"]) == ("ug/m3", "CC-BY-4.0", 51.5, -0.12)
        assert meta["query"]["path"] == "readings"
        assert meta["quality"] is None  # opt-in (quality=true)
        assert pq.ParquetFile(path).metadata.num_row_groups > 10  # written batch by batch
    np.testing.assert_array_equal(got.sensor_id.astype(str).to_numpy(), want.sensor_id.to_numpy())
    np.testing.assert_array_equal(got_us, want.ts_us.to_numpy())
    np.testing.assert_array_equal(got.value.to_numpy(), want.value.to_numpy())  # round-trips exactly

    grew = big["peak_rss_kb"] - small["peak_rss_kb"]
    assert grew < MEMORY_SLACK_KB, (f"{fmt}: peak RSS {small['peak_rss_kb']} KB at 100k rows, "
                                    f"{big['peak_rss_kb']} KB at 1M rows (+{grew} KB)")


async def _collect(runner: HistoryRunner, params: dict[str, str], fmt: str, **kw) -> bytes:
    ex = await open_export(runner, parse_query(params), fmt, **kw)
    buf = io.BytesIO()
    async for chunk in ex.chunks:
        buf.write(chunk)
    return buf.getvalue()


async def test_bucketed_and_filled_exports_equal_the_pages(million):
    _, pool, _ = million
    runner = HistoryRunner(pool)
    params = {"sensor": "ex-01,ex-02", "start": "2024-01-02T00:00:00Z", "end": "2024-01-02T06:00:00Z",
              "bucket": "5m", "agg": "count,mean,stddev,p50", "fill": "linear", "tz": "Asia/Kolkata"}
    page = await runner.page(parse_query(params), limit=10_000)
    want = [(sid, at, vals, filled) for sid, at, vals, filled in page.rows]
    for fmt in ("csv", "ndjson", "parquet"):
        data = await _collect(runner, params, fmt, chunk_rows=7)  # many small chunks: fill across them
        if fmt == "csv":
            got = pd.read_csv(io.BytesIO(data), comment="#")
            stamps = pd.to_datetime(got.bucket_utc, utc=True)
        elif fmt == "ndjson":
            lines = data.decode().splitlines()
            assert "series" in orjson.loads(lines[0])["meta"]
            got = pd.DataFrame([orjson.loads(x) for x in lines[1:]])
            stamps = pd.to_datetime(got.bucket, utc=True)
        else:
            got = pq.read_table(io.BytesIO(data)).to_pandas()
            stamps = got.bucket
        assert len(got) == len(want), fmt
        assert (stamps.astype("datetime64[us, UTC]").astype("int64").to_numpy() == [w[1] for w in want]).all()
        assert got.filled.tolist() == [w[3] for w in want]
        for i, col in enumerate(("count", "mean", "stddev", "p50")):
            exp = np.array([np.nan if w[2][i] is None else w[2][i] for w in want], float)
            np.testing.assert_allclose(got[col].to_numpy(float), exp, rtol=1e-12, equal_nan=True, err_msg=fmt)


async def test_quality_section_on_request(million):
    _, pool, _ = million
    runner = HistoryRunner(pool)
    params = {"sensor": "ex-00,ex-01", "start": "2024-01-02T00:00:00Z", "end": "2024-01-03T00:00:00Z"}
    csv = (await _collect(runner, params, "csv", quality=True)).decode()
    line = next(x for x in csv.splitlines() if x.startswith("# quality "))
    report = orjson.loads(line[len("# quality "):])
    assert sum(s["received"] for s in report["series"]) == 2 * 8640
    ex00 = next(s for s in report["series"] if s["sensor_id"] == "ex-00")
    assert ex00["expected"] == 8640 and ex00["completeness"] == 1.0
    data = await _collect(runner, params, "parquet", quality=True)
    meta = orjson.loads(pq.read_schema(io.BytesIO(data)).metadata[b"urbanpulse"])
    assert meta["quality"]["series"] == report["series"]
    assert "# quality" not in (await _collect(runner, params, "csv")).decode()


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.integers(1, 10_000), max_size=40, unique=True),
       counts=st.lists(st.integers(0, 5_000), min_size=40, max_size=40), target=st.integers(1, 20_000))
def test_copy_groups_keep_the_order_and_the_bound(ids, counts, target):
    ids = sorted(ids)
    per = dict(zip(ids, counts))
    groups = copy_groups(ids, per, target)
    assert [s for g in groups for s in g] == ids and all(groups)
    for g in groups:
        assert len(g) == 1 or sum(per[s] for s in g) <= target
    for a, b in zip(groups, groups[1:]):  # a group is only closed when the next series would not fit
        assert sum(per[s] for s in a) + per[b[0]] > target


@pytest.mark.parametrize("read_ahead", [True, False])
async def test_readings_export_in_several_copy_groups_equals_one(million, monkeypatch, read_ahead):
    """Groups read one after the other on one connection, or ahead on a second one (the next
    group's COPY sorting while this one streams): the same file as one COPY. A pool of its own
    (one connection open, room for a second): whether the module's pool has one to spare depends
    on what the tests before did with it."""
    dsn, _, frame = million
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=prepare_connection)
    try:
        await _several_groups_equal_one(pool, frame, monkeypatch, read_ahead)
    finally:
        await pool.close()


async def _several_groups_equal_one(pool: asyncpg.Pool, frame: pd.DataFrame, monkeypatch, read_ahead: bool) -> None:  # noqa: ANN001
    runner = HistoryRunner(pool)
    params = {"sensor": "ex-02,ex-05,ex-06,ex-11,ex-19", "start": "2024-01-02T00:00:00Z",
              "end": "2024-01-03T12:00:00Z"}
    monkeypatch.setattr(source, "COPY_GROUP_ROWS", 10_000_000)
    one = await _collect(runner, params, "csv")
    monkeypatch.setattr(source, "COPY_GROUP_ROWS", 20_000)  # ~13,000 readings per series: a group each
    second = source._second_connection
    lent = []

    async def spy(p):  # noqa: ANN001, ANN202
        conn = await second(p) if read_ahead else None
        lent.append(conn)
        return conn

    monkeypatch.setattr(source, "_second_connection", spy)
    several = await _collect(runner, params, "csv", chunk_rows=5_000)
    assert (lent[0] is not None) == read_ahead  # the pool (max 2) had one to spare
    assert pool.get_idle_size() == pool.get_size()  # both connections went back
    assert one == several
    got = pd.read_csv(io.BytesIO(several), comment="#")
    want = expected(frame[frame.sensor_id.isin(params["sensor"].split(","))], params)
    np.testing.assert_array_equal(got.sensor_id.to_numpy(), want.sensor_id.to_numpy())
    np.testing.assert_array_equal(got.value.to_numpy(), want.value.to_numpy())


@pytest.mark.parametrize("chunk_rows", [50, 100, 400])
async def test_an_export_abandoned_after_its_copy_ended_returns_its_connection(million, chunk_rows):
    """The client goes away while the producer, its COPY done, waits to hand over its last
    batches: the export ends and its connection goes back (the producer must not take its own
    cancellation for an error to hand to a consumer that is gone: that put would wait forever)."""
    _, pool, _ = million
    runner = HistoryRunner(pool)
    ex = await open_export(runner, parse_query({"sensor": "ex-03", "start": "2024-01-02T00:00:00Z",
                                                "end": "2024-01-02T02:00:00Z"}), "csv", chunk_rows=chunk_rows)
    first = await anext(ex.chunks)
    assert first
    await asyncio.sleep(0.5)  # ~720 rows: the COPY has ended; the producer waits on the full queue
    await asyncio.wait_for(ex.chunks.aclose(), 30)
    assert pool.get_idle_size() == pool.get_size()


@pytest.mark.parametrize("read_ahead", [True, False])
async def test_an_export_abandoned_mid_file_returns_both_connections(million, monkeypatch, read_ahead):
    """A client that goes away after the first bytes (the response's iterator closed) leaves no
    COPY running and no connection lent, with and without the read-ahead connection. (Once, with
    the pool's other connection lent elsewhere, the producer swallowed its cancellation and waited
    forever to hand it to a full queue: the export's connection was never returned.)"""
    _, pool, _ = million
    runner = HistoryRunner(pool)
    if not read_ahead:
        async def none(p):  # noqa: ANN001, ANN202
            return None

        monkeypatch.setattr(source, "_second_connection", none)
    monkeypatch.setattr(source, "COPY_GROUP_ROWS", 20_000)
    ex = await open_export(runner, parse_query({**FULL, "sensor": ",".join(f"ex-{i:02d}" for i in range(8))}),
                           "parquet", chunk_rows=5_000)
    got = 0
    async for chunk in ex.chunks:
        got += len(chunk)
        if ex.writer.rows >= 20_000:
            break
    await asyncio.sleep(0.3)  # the producer fills the queue meanwhile: the case that hung (a put nobody takes)
    await asyncio.wait_for(ex.chunks.aclose(), 60)
    assert got > 0 and pool.get_idle_size() == pool.get_size()
    async with pool.acquire() as c:  # and the connections still work
        assert await c.fetchval("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY (%FROM readings%' "
                                "AND state <> 'idle' AND datname = current_database()") == 0


async def test_readings_export_without_copy_equals_copy(million):
    _, pool, _ = million
    runner = HistoryRunner(pool)
    params = {"sensor": "ex-03,ex-07", "start": "2024-01-03T00:00:00Z", "end": "2024-01-03T02:00:00Z"}
    a = await _collect(runner, params, "csv", chunk_rows=100)
    b = await _collect(runner, params, "csv", chunk_rows=333, use_copy=False)
    assert a == b and a.count(b"\n") > 1000


async def test_http_export_streams_a_file(million):
    import httpx

    from urbanpulse.api.access import AccessPolicy
    from urbanpulse.api.app import build_app

    _, pool, frame = million
    app = build_app(AccessPolicy(open_data=True), service=type("Svc", (), {"pool": pool})())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        # anonymous open data: ex-00 is registered (open by default); the others are not
        r = await c.get("/readings/export", params={"metric": "pm2_5", "start": "2024-01-01T00:00:00Z",
                                                     "end": "2024-01-01T01:00:00Z", "format": "parquet"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.apache.parquet"
        assert "attachment" in r.headers["content-disposition"]
        got = pq.read_table(io.BytesIO(r.content)).to_pandas()
    assert set(got.sensor_id.astype(str)) == {"ex-00"} and len(got) == 360


def test_cli_export_writes_the_file_with_a_progress_bar(million, tmp_path):
    dsn, _, frame = million
    out = tmp_path / "ex.parquet"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "URBANPULSE_DATABASE__DSN": dsn}
    res = subprocess.run([sys.executable, "-m", "urbanpulse.cli", "export", "--sensor", "ex-04,ex-05",
                          "--start", "2024-01-01T00:00:00Z", "--end", "2024-01-01T06:00:00Z", "--output", str(out)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "exported 4,320 rows of 2 series (parquet, from readings)" in res.stderr
    assert "100%" in res.stderr and "rows" in res.stderr  # tqdm's bar reached its estimated total
    got = pq.read_table(out).to_pandas()
    want = expected(frame[frame.sensor_id.isin(["ex-04", "ex-05"])],
                    {"metric": "x", "start": "2024-01-01T00:00:00Z", "end": "2024-01-01T06:00:00Z"})
    np.testing.assert_array_equal(got.value.to_numpy(), want.value.to_numpy())
    bad = subprocess.run([sys.executable, "-m", "urbanpulse.cli", "export", "--sensor", "ex-04", "--start",
                          "2024-01-01", "--bucket", "7m", "--output", str(tmp_path / "x.csv")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "divide a day" in bad.stderr
