"""Generated database contents for the per-class retention tests (plain PostgreSQL and the
TimescaleDB stand-in): series of the three classes (personal by pseudonym, restricted by registry
entry, open), readings with precise positions, rollup rows, quarantine rows and alerts at many
ages; and the end state per-class retention must leave, computed here independently of the SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
from hypothesis import strategies as st

from urbanpulse.privacy.settings import PrivacySettings
from urbanpulse.privacy.retention import ROLLUP_WIDTHS

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)

PRIVACY = PrivacySettings.model_validate({
    "topics": {"phones/#": "personal"}, "sources": {"http": "personal"},
    "policies": {
        "personal": {"pseudonymise": True, "location_decimals": 3,
                     "retention": {"readings": "P30D", "rollups": "P40D", "quarantine": "P7D", "alerts": "P20D"},
                     "coarsen_after": [{"after": "P10D", "decimals": 2}, {"after": "P20D", "geohash": 4}]},
        "restricted": {"retention": {"readings": "P45D"}, "coarsen_after": [{"after": "P5D", "geohash": 6}]},
    }})

CLASSES = ("personal", "restricted", "open")
QUARANTINE_ORIGINS = [("mqtt", "phones/#", "personal"), ("http", None, "personal"), ("mqtt", "city/a", "open"),
                      ("kafka", "phones-not", "open")]


@dataclass
class Layout:
    """One generated database content."""

    series: list[str]                                   # class per series (ids 1..n)
    readings: list[tuple[int, int, float, float]]       # (series index, age in minutes, lat, lon)
    rollups: list[tuple[int, str, int]]                 # (series index, table, bucket age in buckets)
    quarantine: list[tuple[int, int]]                   # (origin index, age in hours)
    alerts: list[tuple[int, bool, int, int]]            # (series index, resolved, resolved age h, event age h)

    def sensor(self, i: int) -> str:
        return {"personal": f"psn-device{i}", "restricted": f"bus-{i}", "open": f"station-{i}"}[self.series[i]]


@st.composite
def layouts(draw: st.DrawFn) -> Layout:
    series = ["personal"] + draw(st.lists(st.sampled_from(CLASSES), min_size=1, max_size=4))
    n = len(series)
    coords = st.tuples(st.integers(-89_000_000, 89_000_000), st.integers(-179_000_000, 179_000_000))
    raw = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 60 * 24 * 60), coords), min_size=6, max_size=30,
                        unique_by=lambda r: (r[0], r[1])))
    readings = [(i, age, c[0] / 1e6, c[1] / 1e6) for i, age, c in raw]
    rollups = draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from(list(ROLLUP_WIDTHS)),
                                      st.integers(0, 70 * 24 * 60)), max_size=15,
                            unique_by=lambda r: (r[0], r[1], _bucket(r[1], r[2]))))
    quarantine = draw(st.lists(st.tuples(st.integers(0, len(QUARANTINE_ORIGINS) - 1), st.integers(0, 24 * 20)),
                               max_size=10))
    alerts = draw(st.lists(st.tuples(st.integers(0, n - 1), st.booleans(), st.integers(0, 24 * 40),
                                     st.integers(0, 24 * 40)), max_size=6))
    return Layout(series, readings, rollups, quarantine, alerts)


def _bucket(table: str, age: int) -> datetime:
    width = ROLLUP_WIDTHS[table]
    start = NOW - timedelta(minutes=age)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return epoch + ((start - epoch) // width) * width


async def fill(conn, layout: Layout, partitions=None, pool=None) -> None:  # noqa: ANN001
    """Write ``layout`` into an empty schema (series ids 1..n in order)."""
    for i, cls in enumerate(layout.series):
        sensor = layout.sensor(i)
        await conn.execute("INSERT INTO series (id, sensor_id, metric, data_class) VALUES ($1, $2, 'speed', $3)",
                           i + 1, sensor, "personal" if cls == "personal" else None)
        if cls == "restricted":
            await conn.execute("INSERT INTO sensors_history (sensor_id, valid_from, name, lat, lon, data_class) "
                               "VALUES ($1, $2, $1, 52.5, 13.4, 'restricted')", sensor, NOW - timedelta(days=400))
    stamps = [NOW - timedelta(minutes=age) for _, age, _, _ in layout.readings]
    if partitions is not None and stamps:
        await partitions.ensure(pool, np.array([int(t.timestamp() * 1e6) for t in stamps], np.int64))
    await conn.executemany("INSERT INTO readings (series_id, ts, value, lat, lon) VALUES ($1, $2, 1.0, $3, $4)",
                           [(i + 1, t, lat, lon) for (i, _, lat, lon), t in zip(layout.readings, stamps)])
    for table in ROLLUP_WIDTHS:
        rows = [(i + 1, _bucket(t, age)) for i, t, age in layout.rollups if t == table]
        await conn.executemany(f"INSERT INTO {table} VALUES ($1, $2, 1, 1.0, 0, 1.0, 1.0, $2, 1.0, $2, 1.0)", rows)
    await conn.executemany(
        "INSERT INTO quarantine (received_at, source, topic, reason, payload, payload_size) "
        "VALUES ($1, $2, $3, 'out_of_range', '\\x00', 1)",
        [(NOW - timedelta(hours=age), QUARANTINE_ORIGINS[o][0], QUARANTINE_ORIGINS[o][1])
         for o, age in layout.quarantine])
    for k, (i, resolved, resolved_age, event_age) in enumerate(layout.alerts):
        opened = NOW - timedelta(days=60, hours=k)
        await conn.execute(
            "INSERT INTO alerts (id, series_id, sensor_id, metric, detector, severity, state, opened_at, "
            "last_triggered_at, resolved_at) VALUES ($1, $2, $3, 'speed', $4, 'warning', $5, $6, $6, $7)",
            k + 1, i + 1, layout.sensor(i), f"d{k}", "resolved" if resolved else "open", opened,
            NOW - timedelta(hours=resolved_age) if resolved else None)
        await conn.execute("INSERT INTO alert_events (alert_id, at, kind, state, reopen_count, trigger_count, "
                           "payload) VALUES ($1, $2, 'opened', 'open', 0, 1, '{}')", k + 1,
                           NOW - timedelta(hours=event_age))


def expected(layout: Layout) -> dict[str, object]:
    """What per-class retention at NOW must leave (readings: (series, age) -> (lat, lon) or the
    grid to check against)."""
    out: dict[str, object] = {}
    readings = {}
    for i, age, lat, lon in layout.readings:
        cls = layout.series[i]
        policy = PRIVACY.policies.get(cls)
        t = NOW - timedelta(minutes=age)
        if policy is not None and policy.retention.readings is not None and t < NOW - policy.retention.readings:
            continue
        grid = None
        if policy is not None:
            for step in sorted(policy.coarsen_after, key=lambda s: s.after):
                if t < NOW - step.after:
                    grid = step.grid
        readings[(i + 1, t)] = (lat, lon, grid)
    out["readings"] = readings
    rollups = set()
    for i, table, age in layout.rollups:
        policy = PRIVACY.policies.get(layout.series[i])
        b = _bucket(table, age)
        keep = policy.retention.rollups if policy is not None else None
        if keep is not None and b + ROLLUP_WIDTHS[table] <= NOW - keep:
            continue
        rollups.add((table, i + 1, b))
    out["rollups"] = rollups
    quarantine = []
    for o, age in layout.quarantine:
        cls = QUARANTINE_ORIGINS[o][2]
        policy = PRIVACY.policies.get(cls)
        keep = policy.retention.quarantine if policy is not None else None
        if keep is not None and NOW - timedelta(hours=age) < NOW - keep:
            continue
        quarantine.append((QUARANTINE_ORIGINS[o][0], QUARANTINE_ORIGINS[o][1], NOW - timedelta(hours=age)))
    out["quarantine"] = sorted(quarantine, key=repr)
    alerts, events = set(), set()
    for k, (i, resolved, resolved_age, event_age) in enumerate(layout.alerts):
        policy = PRIVACY.policies.get(layout.series[i])
        keep = policy.retention.alerts if policy is not None else None
        if keep is not None and resolved and NOW - timedelta(hours=resolved_age) < NOW - keep:
            continue
        alerts.add(k + 1)
        if keep is None or not NOW - timedelta(hours=event_age) < NOW - keep:
            events.add(k + 1)
    out["alerts"], out["events"] = alerts, events
    return out


async def dump(conn) -> dict[str, object]:  # noqa: ANN001
    """The tables per-class retention touches, as comparable values."""
    rollups = []
    for t in ROLLUP_WIDTHS:
        rollups += [(t, r[0], r[1]) for r in await conn.fetch(f"SELECT series_id, bucket FROM {t}")]
    return {
        "readings": sorted(tuple(r) for r in await conn.fetch("SELECT series_id, ts, lat, lon FROM readings")),
        "rollups": sorted(rollups),
        "quarantine": sorted((r[0], r[1], r[2]) for r in await conn.fetch(
            "SELECT source, topic, received_at FROM quarantine")),
        "alerts": sorted(r[0] for r in await conn.fetch("SELECT id FROM alerts")),
        "events": sorted(r[0] for r in await conn.fetch("SELECT alert_id FROM alert_events")),
    }


def check_against_expected(state: dict[str, object], want: dict[str, object]) -> None:
    """``state`` (from :func:`dump`) is what :func:`expected` says, positions on their grids."""
    readings = {(r[0], r[1]): (r[2], r[3]) for r in state["readings"]}  # type: ignore[union-attr]
    exp = want["readings"]
    assert set(readings) == set(exp), (sorted(set(readings) ^ set(exp)))  # type: ignore[arg-type]
    for key, (lat, lon, grid) in exp.items():  # type: ignore[union-attr]
        got = readings[key]
        if grid is None:
            assert got == (lat, lon), (key, got, lat, lon)
            continue
        lat_step, lon_step = grid.steps
        assert abs(got[0] - lat) <= lat_step / 2 + 1e-9 and abs(got[1] - lon) <= lon_step / 2 + 1e-9, (key, got, grid)
        again = grid.snap(np.array([got[0]]), np.array([got[1]]))
        assert abs(again[0][0] - got[0]) < 1e-9 and abs(again[1][0] - got[1]) < 1e-9, (key, got, grid)  # on the grid
    assert set(state["rollups"]) == want["rollups"]  # type: ignore[arg-type]
    assert sorted(state["quarantine"], key=repr) == want["quarantine"]  # type: ignore[arg-type]
    assert set(state["alerts"]) == want["alerts"]  # type: ignore[arg-type]
    assert set(state["events"]) == want["events"]  # type: ignore[arg-type]


TABLES = ("readings", "rollup_1m", "rollup_1h", "rollup_1d", "quarantine", "alerts", "alert_events", "series",
          "sensors_history")
