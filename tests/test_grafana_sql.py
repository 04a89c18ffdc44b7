"""Every Grafana panel's SQL runs against the schema, in both storage modes (issue 13 item 2).

Each SQL query of the provisioned dashboards (panel targets, the alert annotation, variable
queries) is expanded as Grafana would send it (tests/grafana_check.py: variables as the browser
interpolates them for an SQL datasource, macros as the PostgreSQL datasource's engine writes them,
with ``time_bucket`` when the datasource's TimescaleDB option is on) and run **as
``grafana_reader``** after ``deploy/postgres/grafana_reader.sql``, so a panel that reads something
the role may not read fails too. The database: the migrated schema with a registry (areas, a
sensor whose earlier version was in maintenance, an unregistered sensor), readings at 2 s, 10 s,
10 min and 3 h (a 30-minute outage, some flagged late) written with their rollups by the real
``RollupWriter`` (so each series keeps the levels the rule gives it), alerts and quarantine rows.

Plain PostgreSQL and TimescaleDB (the PGlite 2.23 stand-in: one connection, no COPY, chunks
compressed before the dashboards read them). Each query must return the columns its panel reads
(named in :data:`COLUMNS` and in the panel's field config), time series sorted by a ``time``
column, and, for the main scenario, rows. Values are checked where a definition exists elsewhere:
the level ``series_buckets()`` reads per series (docs/rollups.md's table), the completeness panel
against ``quality_report()`` (GET /quality), the outage in the gaps panel, and, on generated
series, ``series_buckets()`` against an aggregation of the raw readings.
"""

from __future__ import annotations

import json
import math
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import asyncpg
import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import grafana_check as gc
import services
from history_check import SinglePool
from urbanpulse.quality.report import quality_report
from urbanpulse.storage.migrations import migrate
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.rollups import ConfiguredIntervals, RollupPolicy, RollupWriter, rollup_partials
from urbanpulse.storage.writer import prepare_connection

pytestmark = pytest.mark.integration

GRANTS = (gc.REPO / "deploy" / "postgres" / "grafana_reader.sql").read_text()
NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
BASE = NOW - timedelta(days=3)  # the seeded data lies in [BASE, NOW)
RANGE_3D = (BASE - timedelta(seconds=0.5), NOW - timedelta(seconds=0.5))  # not on a reading's timestamp


@dataclass(frozen=True)
class SeedSeries:
    sensor_id: str
    metric: str
    interval_s: float
    start: timedelta      # after BASE
    count: int
    registered: bool = True


SEED = [
    SeedSeries("gt-dongsi", "pm2_5", 10, timedelta(days=2, hours=18), 2160),   # the last 6 h (outage inside)
    SeedSeries("gt-dongsi", "pm10", 10, timedelta(days=2, hours=23), 360),
    SeedSeries("gt-tiantan", "pm2_5", 600, timedelta(0), 432),                  # 3 days
    SeedSeries("gt-haidian", "no2", 2, timedelta(days=2, hours=23), 1800),      # the last hour
    SeedSeries("gt-sparse", "temperature", 10800, timedelta(0), 24),
    SeedSeries("gt-unknown", "pm2_5", 60, timedelta(days=2, hours=22), 10, registered=False),
]
OUTAGE = (timedelta(days=2, hours=21), timedelta(minutes=30))  # gt-dongsi pm2_5: nothing in this stretch
#: the finest level the rule keeps (10 readings per bucket) -> what series_buckets reads per width
LEVEL_FOR = {  # (sensor, metric): {interval_ms: level}
    ("gt-dongsi", "pm2_5"): {60_000: "raw", 3_600_000: "1h", 86_400_000: "1d", 10_000: "raw"},
    ("gt-haidian", "no2"): {60_000: "1m", 3_600_000: "1h", 86_400_000: "1d", 10_000: "raw"},
    ("gt-tiantan", "pm2_5"): {60_000: "raw", 3_600_000: "raw", 86_400_000: "1d"},
    ("gt-sparse", "temperature"): {60_000: "raw", 3_600_000: "raw", 86_400_000: "raw"},
}

REGISTRY = [  # sensor_id, valid_from, valid_to, area, status, lat, lon, metrics
    ("gt-dongsi", BASE - timedelta(days=30), None, "dongcheng", "active", 39.929, 116.417,
     {"pm2_5": {"unit": "ug/m3", "interval_s": 10}, "pm10": {"unit": "ug/m3", "interval_s": 10}}),
    ("gt-tiantan", BASE - timedelta(days=30), BASE + timedelta(days=1), "dongcheng", "maintenance", 39.886, 116.407,
     {"pm2_5": {"unit": "ug/m3", "interval_s": 600}}),
    ("gt-tiantan", BASE + timedelta(days=1), None, "dongcheng", "active", 39.886, 116.407,
     {"pm2_5": {"unit": "ug/m3", "interval_s": 600}}),
    ("gt-haidian", BASE - timedelta(days=30), None, "haidian", "active", 39.987, 116.287,
     {"no2": {"unit": "ug/m3", "interval_s": 2}}),
    ("gt-sparse", BASE - timedelta(days=30), None, "haidian", "active", 39.95, 116.30,
     {"temperature": {"unit": "degC", "interval_s": 10800}}),
]

#: the columns each query returns, in order (panel field configs and Grafana's formats read them)
COLUMNS = {
    ("district.json", "Sensors by status"): ["status", "sensors"],
    ("district.json", "Open alerts"): ["open_alerts"],
    ("district.json", "Readings stored per area"): ["time", "metric", "readings"],
    ("district.json", "$metric: mean per area"): ["time", "metric", "mean"],
    ("district.json", "$metric per sensor (min / mean / max)"): ["time", "metric", "mean", "min", "max"],
    ("district.json", "Latest $metric on the map"): ["sensor_id", "name", "status", "lat", "lon", "time", "value"],
    ("district.json", "Latest $metric per sensor"): ["sensor_id", "name", "status", "lat", "lon", "time", "value"],
    ("district.json", "Open alerts in the area"): ["time", "sensor_id", "name", "metric", "detector", "severity",
                                                   "state", "last_triggered_at", "trigger_count"],
    ("district.json", "variable area"): ["area"],
    ("district.json", "variable metric"): ["metric"],
    ("sensor-history.json", "Registry entry"): ["sensor_id", "name", "type", "area", "status", "data_class", "lat",
                                                "lon", "owner", "install_date", "valid_from", "metric", "unit",
                                                "interval_s"],
    ("sensor-history.json", "$sensor: mean, min and max"): ["time", "metric", "mean", "min", "max"],
    ("sensor-history.json", "Where the buckets come from"): ["metric", "level", "buckets", "readings"],
    ("sensor-history.json", "Rollup levels kept"): ["metric", "levels_kept", "interval_s", "interval_from",
                                                    "decided_at"],
    ("sensor-history.json", "Readings"): ["time", "metric", "value", "late", "source"],
    ("sensor-history.json", "Alerts"): ["time", "metric", "detector", "severity", "state", "trigger_count",
                                        "max_score", "acknowledged_by", "resolved_at", "resolved_by"],
    ("sensor-history.json", "annotation Alerts"): ["time", "timeend", "text", "tags"],
    ("sensor-history.json", "variable area"): ["area"],
    ("sensor-history.json", "variable sensor"): ["__value", "__text"],
    ("sensor-history.json", "variable metric"): ["metric"],
    ("data-quality.json", "Completeness per area"): ["area", "completeness"],
    ("data-quality.json", "Completeness per series"): ["sensor_id", "area", "metric", "received", "expected",
                                                       "completeness", "last_seen"],
    ("data-quality.json", "Gaps"): ["time", "gap_end", "sensor_id", "metric", "gap_seconds"],
    ("data-quality.json", "Quarantined messages per reason"): ["time", "metric", "messages"],
    ("data-quality.json", "Quarantine by reason and source"): ["reason", "source", "messages", "bytes",
                                                               "last_received"],
    ("data-quality.json", "Late readings per area"): ["time", "metric", "late_readings"],
    ("data-quality.json", "Readings from unregistered sensors"): ["sensor_id", "metric", "readings", "last_seen"],
    ("data-quality.json", "variable area"): ["area"],
    ("data-quality.json", "variable metric"): ["metric"],
}


def _title(q: gc.Query) -> str:
    if q.kind == "panel":
        return q.where.split("'")[1] if "'" in q.where else q.where
    return q.where


# -- the seeded database ---------------------------------------------------------------------------------


def _readings(s: SeedSeries) -> tuple[np.ndarray, np.ndarray]:
    start_us = int((BASE + s.start).timestamp() * 1e6)
    ts = start_us + (np.arange(s.count) * s.interval_s * 1e6).astype(np.int64)
    if (s.sensor_id, s.metric) == ("gt-dongsi", "pm2_5"):
        a = int((BASE + OUTAGE[0]).timestamp() * 1e6)
        ts = ts[(ts < a) | (ts >= a + int(OUTAGE[1].total_seconds() * 1e6))]
    rng = np.random.default_rng(zlib.crc32(f"{s.sensor_id}/{s.metric}".encode()))
    return ts, 40 + 10 * np.sin(ts / 3.6e9) + rng.normal(0, 1, len(ts))


async def seed(conn: asyncpg.Connection, mode: str) -> None:
    """Registry, readings with their rollups (levels decided by the writer), alerts, quarantine."""
    for sensor, valid_from, valid_to, area, status, lat, lon, metrics in REGISTRY:
        await conn.execute("""
            INSERT INTO sensors_history (sensor_id, valid_from, valid_to, name, area, status, lat, lon, metrics, owner)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, 'city')""",
                           sensor, valid_from, valid_to, sensor.removeprefix("gt-").title(), area, status, lat, lon,
                           json.dumps(metrics))
    interval = {(r[0], m): v["interval_s"] for r in REGISTRY for m, v in r[7].items()}
    sid_of = {}
    for s in SEED:
        sid_of[(s.sensor_id, s.metric)] = await conn.fetchval(
            "INSERT INTO series (sensor_id, metric) VALUES ($1, $2) RETURNING id", s.sensor_id, s.metric)
    key_of = {v: k for k, v in sid_of.items()}.get
    writer = RollupWriter("unnest", RollupPolicy(10, 8, ConfiguredIntervals({}, key_of, lambda a, b: interval.get((a, b)))))
    sid, ts, val = [], [], []
    for s in SEED:
        t, v = _readings(s)
        sid.append(np.full(len(t), sid_of[(s.sensor_id, s.metric)], np.int32))
        ts.append(t)
        val.append(v)
    sid, ts, val = np.concatenate(sid), np.concatenate(ts), np.concatenate(val)
    order = np.argsort(ts, kind="stable")
    sid, ts, val = sid[order], ts[order], val[order]
    flags = np.zeros(len(ts), np.int16)
    flags[::50] = 1  # 2 % flagged late
    if mode == "postgres":
        await MonthlyPartitions().ensure(SinglePool(conn), ts)
    await prepare_connection(conn)
    for i in range(0, len(ts), 400):
        part = slice(i, i + 400)
        async with conn.transaction():
            inserted = await services.stage_and_merge(conn, sid[part], ts[part], val[part], flags[part], source=1)
            await writer.merge(conn, rollup_partials(*inserted))
    alert = """INSERT INTO alerts (series_id, sensor_id, metric, detector, severity, state, opened_at, last_triggered_at,
                                   resolved_at, resolved_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9)"""
    await conn.execute(alert, sid_of[("gt-dongsi", "pm2_5")], "gt-dongsi", "pm2_5", "spike", "warning", "open",
                       NOW - timedelta(hours=2), None, None)
    await conn.execute(alert, sid_of[("gt-tiantan", "pm2_5")], "gt-tiantan", "pm2_5", "threshold", "critical",
                       "resolved", NOW - timedelta(days=1), NOW - timedelta(hours=20), "auto")
    for k, (reason, source) in enumerate([("invalid_json", "mqtt"), ("out_of_range", "kafka"), ("out_of_range", "mqtt"),
                                          ("future_timestamp", "http")] * 3):
        await conn.execute("""INSERT INTO quarantine (received_at, source, topic, reason, detail, payload, payload_size)
                              VALUES ($1, $2, 'city/x', $3, 'why', $4, 10)""",
                           NOW - timedelta(hours=k * 5 + 1), source, reason, b'{"sensor_id": "gt-dongsi"}')
    if mode == "timescaledb":  # older chunks compressed, as the policy would: the dashboards read them too
        for table in ("readings", "rollup_1m", "rollup_1h"):
            await conn.execute(f"""SELECT compress_chunk(c, if_not_compressed => true)
                                   FROM show_chunks('{table}', older_than => now() - interval '1 day') c""")
    await conn.execute(GRANTS)


# -- running a dashboard's queries as Grafana -------------------------------------------------------------


@dataclass
class Ran:
    query: gc.Query
    sql: str
    columns: list[str]
    rows: list[asyncpg.Record]


async def run_as_reader(conn: asyncpg.Connection, sql: str) -> list[asyncpg.Record]:
    await conn.execute("SET ROLE grafana_reader")
    try:
        return await conn.fetch(sql)
    finally:
        await conn.execute("RESET ROLE")


async def columns_of(conn: asyncpg.Connection, sql: str) -> list[str]:
    """Column names even when no row comes back (a prepared statement's description)."""
    await conn.execute("SET ROLE grafana_reader")
    try:
        stmt = await conn.prepare(sql)
        return [a.name for a in stmt.get_attributes()]
    finally:
        await conn.execute("RESET ROLE")


async def run_board(conn: asyncpg.Connection, name: str, board: dict, rng: gc.TimeRange, timescaledb: bool,
                    choose: dict[str, str | Sequence[str]]) -> list[Ran]:
    """Variables resolved in order from their own queries (``choose`` picks among the answers;
    others take every value, as "All" does), then every panel and annotation query."""
    variables = {v["name"]: v for v in board["templating"]["list"]}
    values: dict[str, str | Sequence[str]] = {}
    out = []
    for q in gc.queries(name, board):
        if q.kind != "variable" or not q.is_sql:
            continue
        var = variables[q.where.split()[-1]]
        sql = gc.expand_sql(q.text, variables, values, rng, timescaledb)
        rows = await run_as_reader(conn, sql)
        out.append(Ran(q, sql, await columns_of(conn, sql), rows))
        options = [r["__value"] if "__value" in r.keys() else r[0] for r in rows]
        assert options, f"{name} {q.where}: no values with the seeded data\n{sql}"
        wanted = choose.get(var["name"])
        if wanted is None:
            values[var["name"]] = options if (var.get("multi") or var.get("includeAll")) else options[0]
        else:
            assert set([wanted] if isinstance(wanted, str) else wanted) <= set(options), (var["name"], options)
            values[var["name"]] = wanted
    for q in gc.queries(name, board):
        if q.kind == "variable" or not q.is_sql:
            continue
        sql = gc.expand_sql(q.text, variables, values, rng, timescaledb)
        try:
            rows = await run_as_reader(conn, sql)
        except asyncpg.PostgresError as exc:
            raise AssertionError(f"{name} {q.where} failed: {type(exc).__name__}: {exc}\n{sql}") from exc
        out.append(Ran(q, sql, await columns_of(conn, sql), rows))
    return out


def _is_number(v) -> bool:  # noqa: ANN001
    return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)


def check_shapes(name: str, board: dict, ran: list[Ran], timescaledb: bool) -> None:
    """Columns as COLUMNS and the panel's field config say; time series ordered by time."""
    panels = {p["id"]: p for p in board["panels"]}
    for r in ran:
        title = _title(r.query)
        expected = COLUMNS.get((name, title))
        assert expected is not None, f"{name} {r.query.where}: add its columns to COLUMNS"
        assert r.columns == expected, f"{name} {r.query.where}: columns {r.columns}, expected {expected}\n{r.sql}"
        if r.query.kind == "panel":
            panel = panels[int(r.query.where.split()[1])]
            for ov in panel["fieldConfig"].get("overrides", []):
                if ov["matcher"]["id"] == "byName":
                    assert ov["matcher"]["options"] in r.columns, f"{name} {title}: override of a missing field"
            fields = panel.get("options", {}).get("reduceOptions", {}).get("fields", "")
            if fields.startswith("/^") and fields.endswith("$/"):
                assert fields[2:-2] in r.columns, f"{name} {title}: reduceOptions.fields {fields}"
            for layer in panel.get("options", {}).get("layers", []):
                loc = layer.get("location", {})
                assert {loc.get("latitude"), loc.get("longitude")} <= set(r.columns), f"{name} {title}: map fields"
        if r.query.format == "time_series" and r.rows:
            times = [row["time"] for row in r.rows]
            kind = datetime if (timescaledb or "$__timeGroup" not in r.query.text) else (float, int, Decimal)
            assert all(isinstance(t, kind) for t in times), f"{name} {title}: time is {type(times[0])}"
            assert times == sorted(times), f"{name} {title}: Grafana needs time series rows ordered by time"
            for col in r.columns:
                if col not in ("time", "metric"):
                    assert all(row[col] is None or _is_number(row[col]) for row in r.rows), f"{name} {title}: {col}"
            assert all(isinstance(row["metric"], str) for row in r.rows), f"{name} {title}: metric names"


INTERVALS_MS = [10_000, 60_000, 3_600_000, 86_400_000]


async def check_every_dashboard(conn: asyncpg.Connection, timescaledb: bool) -> dict[tuple[str, str, int, str], Ran]:
    """Every dashboard over the seeded three days at every interval (and every sensor for the
    sensor dashboard); returns the main scenario's runs by (dashboard, title, interval, sensor)."""
    boards = gc.dashboards()
    sql_boards = {n: b for n, b in boards.items() if any(q.is_sql for q in gc.queries(n, b))}
    assert set(sql_boards) == {"district.json", "sensor-history.json", "data-quality.json"}
    main: dict[tuple[str, str, int, str], Ran] = {}
    seen: set[tuple[str, str]] = set()
    for interval in INTERVALS_MS:
        rng = gc.TimeRange(*RANGE_3D, interval)
        for name, board in sql_boards.items():
            choices: list[dict] = [{}]
            if name == "district.json":
                choices = [{"metric": m} for m in ("pm2_5", "no2")]
            if name == "sensor-history.json":
                choices = [{"sensor": s} for s in ("gt-dongsi", "gt-haidian", "gt-tiantan", "gt-sparse")]
            for choose in choices:
                ran = await run_board(conn, name, board, rng, timescaledb, choose)
                check_shapes(name, board, ran, timescaledb)
                for r in ran:
                    key = (name, _title(r.query))
                    seen.add(key)
                    main.setdefault((*key, interval, str(choose.get("sensor", choose.get("metric", "")))), r)
    assert seen == set(COLUMNS), f"queries not run: {set(COLUMNS) - seen}; unknown: {seen - set(COLUMNS)}"
    # with the seeded data every query answers rows in its main scenario (a 1-hour interval)
    for name, title in COLUMNS:
        who = {"district.json": "pm2_5", "sensor-history.json": "gt-dongsi"}.get(name, "")
        r = main[(name, title, 3_600_000, who)]
        assert r.rows, f"{name} {title}: no rows for the seeded data\n{r.sql}"
    return main


async def check_values(conn: asyncpg.Connection, main: dict, timescaledb: bool) -> None:
    """What the panels answer, against definitions made elsewhere."""
    boards = gc.dashboards()
    # series_buckets() reads the level docs/rollups.md's rule keeps, else raw readings
    for (sensor, metric), by_interval in LEVEL_FOR.items():
        for interval, level in by_interval.items():
            r = main.get(("sensor-history.json", "Where the buckets come from", interval, sensor))
            if r is None:
                r = next(x for x in await run_board(conn, "sensor-history.json", boards["sensor-history.json"],
                                                    gc.TimeRange(*RANGE_3D, interval), timescaledb,
                                                    {"sensor": sensor})
                         if _title(x.query) == "Where the buckets come from")
            got = {(row["metric"], row["level"]) for row in r.rows}
            assert (metric, level) in got, f"{sensor} {metric} at {interval} ms: read {got}, expected {level}"
            n = sum(row["readings"] for row in r.rows if row["metric"] == metric)
            stored = await conn.fetchval("""SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id
                                            WHERE s.sensor_id = $1 AND s.metric = $2""", sensor, metric)
            assert n == stored, f"{sensor} {metric} at {interval} ms: {n} readings in buckets, {stored} stored"
    # completeness equals GET /quality's (quality_report) for every series with an interval
    r = main[("data-quality.json", "Completeness per series", 3_600_000, "")]
    report = await quality_report(conn, RANGE_3D[0], RANGE_3D[1])
    want = {(q.series.sensor_id, q.series.metric): q for q in report.series if q.expected}
    got = {(row["sensor_id"], row["metric"]): row for row in r.rows}
    assert set(got) == set(want), (sorted(got), sorted(want))
    for key, row in got.items():
        assert row["received"] == want[key].received, key
        assert math.isclose(float(row["completeness"]), want[key].completeness, rel_tol=1e-6), \
            (key, row["completeness"], want[key].completeness)
    tiantan = want[("gt-tiantan", "pm2_5")]
    assert tiantan.expected < 3 * 144 - 100, "the maintenance day expects nothing"
    area = main[("data-quality.json", "Completeness per area", 3_600_000, "")]
    for row in area.rows:
        mine = [q for k, q in want.items() if q.series.area == row["area"]]
        ratio = sum(min(q.received, q.expected) for q in mine) / sum(q.expected for q in mine)
        assert math.isclose(float(row["completeness"]), ratio, rel_tol=1e-6), row
    # the outage is the longest gap
    gaps = main[("data-quality.json", "Gaps", 3_600_000, "")].rows
    top = gaps[0]
    assert (top["sensor_id"], top["metric"]) == ("gt-dongsi", "pm2_5")
    assert math.isclose(float(top["gap_seconds"]), OUTAGE[1].total_seconds() + 10, abs_tol=10.5), top
    # the reader sees quarantine reasons but not what was quarantined
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await run_as_reader(conn, "SELECT payload FROM quarantine")
    for secret in ("api_keys", "privacy_audit", "source_suspects"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await run_as_reader(conn, f"SELECT count(*) FROM {secret}")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await run_as_reader(conn, "DELETE FROM readings")
    config = await conn.fetchval("SELECT rolconfig FROM pg_roles WHERE rolname = 'grafana_reader'")
    assert "statement_timeout=30s" in config, config


# -- plain PostgreSQL -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def pg_conn():
    err = services.check_postgres()
    if err:
        services.unavailable(f"PostgreSQL not reachable: {err}")
    name, dsn = services.create_database(prefix="up_test_grafana")
    conn = await asyncpg.connect(dsn)
    try:
        assert await migrate(conn, "postgres") == "postgres"
        yield conn
    finally:
        await conn.close()
        services.drop_database(name)


async def test_every_panel_runs_on_postgresql(pg_conn):
    await seed(pg_conn, "postgres")
    main = await check_every_dashboard(pg_conn, timescaledb=False)
    await check_values(pg_conn, main, timescaledb=False)


# -- series_buckets() equals an aggregation of the raw readings ------------------------------------------------

WIDTHS_S = [10, 60, 300, 3600, 7200, 86400, 2 * 86400]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(intervals=st.lists(st.sampled_from([1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 3600.0, 10800.0]),
                          min_size=1, max_size=3),
       n=st.integers(20, 300), jitter=st.floats(0.0, 0.4), width_s=st.sampled_from(WIDTHS_S),
       cut=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)), seed_=st.integers(0, 2**31))
@example(intervals=[2.0, 600.0], n=300, jitter=0.1, width_s=300, cut=(0.1, 0.9), seed_=1)  # 1m level and raw
@example(intervals=[10.0, 10800.0], n=300, jitter=0.3, width_s=7200, cut=(0.0, 1.0), seed_=2)  # 1h and raw
async def test_series_buckets_equals_an_aggregation_of_the_readings(pg_conn, intervals, n, jitter, width_s, cut,
                                                                      seed_):
    conn = pg_conn
    rng = np.random.default_rng(seed_)
    base_us = int(datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp() * 1e6) + int(rng.integers(0, 86_400)) * 10**6
    ids, ts_all, val_all, per_metric = [], [], [], {}
    for k, interval in enumerate(intervals):
        metric = f"m{k}"
        sid = await conn.fetchval("INSERT INTO series (sensor_id, metric) VALUES ($1, $2) RETURNING id",
                                  f"prop-{uuid.uuid4().hex}", metric)
        steps = interval * (1 + rng.uniform(-jitter, jitter, n))
        ts = base_us + np.cumsum(steps * 1e6).astype(np.int64)
        ids.append(np.full(n, sid, np.int32))
        ts_all.append(ts)
        val_all.append(rng.normal(100, 5, n))
        per_metric[sid] = interval
    sid, ts, val = np.concatenate(ids), np.concatenate(ts_all), np.concatenate(val_all)
    await MonthlyPartitions().ensure(SinglePool(conn), ts)
    writer = RollupWriter("unnest", RollupPolicy(10, 8, lambda s: np.array([per_metric.get(int(x), np.nan) for x in s])))
    await prepare_connection(conn)
    async with conn.transaction():
        await conn.execute("""INSERT INTO readings (series_id, ts, value)
                              SELECT s, timestamptz 'epoch' + t * interval '1 microsecond', v
                                FROM unnest($1::int4[], $2::int8[], $3::float8[]) AS u(s, t, v)""",
                           sid.tolist(), ts.tolist(), val.tolist())
        await writer.merge(conn, rollup_partials(sid, ts, val))
    lo, hi = int(ts.min()), int(ts.max())
    a, b = sorted(cut)
    start_us, end_us = lo + int(a * (hi - lo)), lo + int(b * (hi - lo)) + 1
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    start, end = epoch + timedelta(microseconds=start_us), epoch + timedelta(microseconds=end_us)
    rows = await conn.fetch("SELECT * FROM series_buckets($1::int4[], $2, $3, $4 * interval '1 second') ORDER BY 1, 2",
                            sorted(per_metric), start, end, width_s)
    # the reference: every bucket (epoch-aligned) overlapping [start, end), from the raw readings
    w = width_s * 10**6
    first, last = (start_us // w) * w, -(-end_us // w) * w
    keep = (ts >= first) & (ts < last)
    expected: dict[tuple[int, int], list[float]] = {}
    for s_, t_, v_ in zip(sid[keep], ts[keep], val[keep]):
        expected.setdefault((int(s_), int(t_ // w * w)), []).append(float(v_))
    got = {(r["series_id"], (r["bucket"] - epoch) // timedelta(microseconds=1)): r for r in rows}
    event(f"levels read: {sorted({r['level'] for r in rows})}")
    assert set(got) == set(expected), f"buckets differ: {sorted(set(got) ^ set(expected))[:5]}"
    for key, values in expected.items():
        r = got[key]
        assert r["count"] == len(values), key
        np.testing.assert_allclose([r["mean"], r["min"], r["max"]], [np.mean(values), min(values), max(values)],
                                   rtol=1e-9, err_msg=f"{key} read from {r['level']}")


# -- TimescaleDB (stand-in) ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def ts_conn(tmp_path_factory):
    async with services.timescale_connection(tmp_path_factory.mktemp("timescale-grafana")) as conn:
        assert await migrate(conn, "auto") == "timescaledb"
        yield conn


async def test_every_panel_runs_on_timescaledb(ts_conn):
    await seed(ts_conn, "timescaledb")
    assert await ts_conn.fetchval("""SELECT count(*) FROM timescaledb_information.chunks
                                     WHERE hypertable_name = 'readings' AND is_compressed""") > 0
    main = await check_every_dashboard(ts_conn, timescaledb=True)
    await check_values(ts_conn, main, timescaledb=True)
