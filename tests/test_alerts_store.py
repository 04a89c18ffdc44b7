"""Alerts in a real PostgreSQL: the pipeline's upserts, the API's state changes, restart and
idempotency. Each test gets a new migrated database (``fresh_db``, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import asyncpg
import orjson
import pytest

import services
from urbanpulse.alerts.errors import AlertNotFound, InvalidTransition
from urbanpulse.alerts.inputs import ClosedWindowsRef, Detections, SilencesRef
from urbanpulse.alerts.lifecycle import AlertManager
from urbanpulse.alerts.model import AlertChanges, AlertEvent
from urbanpulse.alerts.query import AlertQuery
from urbanpulse.alerts.settings import AlertSettings
from urbanpulse.alerts.store import AlertStore

pytestmark = pytest.mark.integration

MIN = 60_000_000
T0 = 1_700_000_000_000_000


@pytest.fixture
async def pool(fresh_db: str) -> AsyncIterator[asyncpg.Pool]:
    p = await services.open_migrated_pool(fresh_db, min_size=1, max_size=4, prepared=False)
    try:
        yield p
    finally:
        await p.close()


def new_manager(**kw) -> AlertManager:
    m = AlertManager(AlertSettings(**kw))
    m.assign([0, 1], [10, 11], ["station-a", "station-b"], ["pm2_5", "no2"])
    return m


def det(*rows: tuple) -> Detections:
    return Detections.of([{"slot": s, "ts_us": t, "detector": d, "score": 0.9, "value": 400.0} for s, t, d in rows])


def win(slot: int, start: int, n: int = 1) -> ClosedWindowsRef:
    starts = [start + i * MIN for i in range(n)]
    return ClosedWindowsRef.of([slot] * n, starts, [s + MIN for s in starts])


async def apply(pool: asyncpg.Pool, store: AlertStore, changes: AlertChanges) -> list[AlertEvent]:
    async with pool.acquire() as conn, conn.transaction():
        return await store.apply(conn, changes)


async def rows(pool: asyncpg.Pool, sql: str = "SELECT * FROM alerts ORDER BY id", *args) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(sql, *args)


async def test_opened_alert_is_stored_and_further_triggers_update_the_same_row(pool):
    m = new_manager()
    store = AlertStore(pool, m)
    ev1 = await apply(pool, store, m.process(det((0, T0, "spike"))))
    ev2 = await apply(pool, store, m.process(det((0, T0 + MIN, "spike"), (0, T0 + 2 * MIN, "spike"))))
    (row,) = await rows(pool)
    assert row["state"] == "open" and row["trigger_count"] == 3 and row["sensor_id"] == "station-a"
    assert row["opened_at"] == datetime.fromtimestamp(T0 / 1e6, timezone.utc)
    assert [e.kind for e in ev1 + ev2] == ["opened", "updated"]
    assert ev2[0].id > ev1[0].id and ev2[0].alert_id == row["id"]
    assert ev2[0].payload["trigger_count"] == 3 and len(ev2[0].payload["triggers"]) == 3
    assert ev2[0].payload["opened_at"] == "2023-11-14T22:13:20Z"


async def test_the_database_allows_one_unresolved_alert_per_series_and_detector(pool):
    m = new_manager()
    await apply(pool, AlertStore(pool, m), m.process(det((0, T0, "spike"))))
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("""INSERT INTO alerts (series_id, sensor_id, metric, detector, severity, state,
                                  opened_at, last_triggered_at) VALUES (10, 'station-a', 'pm2_5', 'spike',
                                  'warning', 'open', now(), now())""")


async def test_reapplying_the_same_changes_stores_nothing_twice(pool):
    m = new_manager(resolve_after_windows=1)
    store = AlertStore(pool, m)
    changes = m.process(det((0, T0, "spike"), (1, T0, "flatline")))
    first = await apply(pool, store, changes)
    again = await apply(pool, store, changes)  # a batch retried after an ambiguous commit
    assert len(first) == 2 and again == []
    assert len(await rows(pool)) == 2
    assert len(await rows(pool, "SELECT * FROM alert_events")) == 2


async def test_stale_pipeline_change_does_not_undo_an_acknowledgement_or_a_users_resolve(pool):
    m = new_manager()
    store = AlertStore(pool, m)
    await apply(pool, store, m.process(det((0, T0, "spike"), (1, T0, "spike"))))
    ids = {r["series_id"]: r["id"] for r in await rows(pool)}
    # the pipeline computed these before the API calls below, and writes them after
    stale = m.process(det((0, T0 + MIN, "spike"), (1, T0 + MIN, "spike")))
    alert, events = await store.acknowledge(ids[10], "ana", "on it")
    assert alert["state"] == "acknowledged" and events[0].kind == "acknowledged"
    alert, _ = await store.resolve(ids[11], "ben", "sensor cleaned")
    assert alert["resolved_by"] == "ben"
    events = await apply(pool, store, stale)
    by_series = {r["series_id"]: r for r in await rows(pool)}
    assert by_series[10]["state"] == "acknowledged" and by_series[10]["acknowledged_by"] == "ana"
    assert by_series[10]["trigger_count"] == 2 and by_series[10]["note"] == "on it"
    assert by_series[11]["state"] == "resolved" and by_series[11]["resolved_by"] == "ben"
    # the events carry the stored truth, not the stale in-memory state
    assert {e.payload["series_id"]: e.state for e in events} == {10: "acknowledged", 11: "resolved"}
    # and the manager took the user's decisions into memory
    assert m.get_open(10, "spike").state == "acknowledged"
    assert m.get_open(11, "spike") is None


async def test_auto_resolve_reopen_and_flapping_stay_on_one_row(pool):
    m = new_manager(resolve_after_windows=1, flap_threshold=2, flap_window=timedelta(hours=1))
    store = AlertStore(pool, m)
    t = T0
    kinds = [e.kind for e in await apply(pool, store, m.process(det((0, t, "spike"))))]
    for _ in range(2):
        kinds += [e.kind for e in await apply(pool, store, m.process(closed=win(0, t + MIN)))]
        t += 10 * MIN
        kinds += [e.kind for e in await apply(pool, store, m.process(det((0, t, "spike"))))]
    assert kinds == ["opened", "resolved", "reopened", "resolved", "reopened", "flapping"]
    (row,) = await rows(pool)
    assert row["state"] == "open" and row["reopen_count"] == 2 and row["flapping"]
    assert row["resolved_at"] is None and row["resolved_by"] is None


async def test_an_alert_resolved_by_a_user_reopens_when_the_anomaly_returns(pool):
    m = new_manager()
    store = AlertStore(pool, m)
    await apply(pool, store, m.process(det((0, T0, "spike"))))
    (row,) = await rows(pool)
    await store.resolve(row["id"], "ana")
    events = await apply(pool, store, m.process(det((0, T0 + MIN, "spike"))))
    assert [e.kind for e in events] == ["reopened"]
    (row,) = await rows(pool)
    assert row["state"] == "open" and row["reopen_count"] == 1 and row["resolved_by"] is None


async def test_restart_restores_open_alerts_and_updates_them_instead_of_duplicating(pool):
    m = new_manager(resolve_after_windows=1)
    store = AlertStore(pool, m)
    await apply(pool, store, m.process(det((0, T0, "spike"), (1, T0, "spike"))))
    await apply(pool, store, m.process(closed=win(1, T0 + MIN)))  # series 11 resolved
    # "restart": a new manager, restored from the database
    m2 = new_manager(resolve_after_windows=1)
    async with pool.acquire() as conn:
        assert m2.restore(await store.load_recent(conn, m2.settings.flap_window)) == 1
    store2 = AlertStore(pool, m2)
    events = await apply(pool, store2, m2.process(det((0, T0 + 2 * MIN, "spike"), (1, T0 + 2 * MIN, "spike"))))
    assert sorted(e.kind for e in events) == ["reopened", "updated"]
    assert len(await rows(pool)) == 2
    # the redelivered decision from before the restart changes nothing
    assert not m2.process(det((0, T0, "spike")))


async def test_without_restore_the_stored_open_alert_is_adopted_not_duplicated(pool):
    m = new_manager()
    await apply(pool, AlertStore(pool, m), m.process(det((0, T0, "spike"))))
    m2 = new_manager()  # forgot restore
    store2 = AlertStore(pool, m2)
    events = await apply(pool, store2, m2.process(det((0, T0 + MIN, "spike"))))
    (row,) = await rows(pool)
    assert row["trigger_count"] == 2 and len(orjson.loads(row["triggers"])) == 2
    assert row["last_triggered_at"] == datetime.fromtimestamp((T0 + MIN) / 1e6, timezone.utc)
    assert [(e.kind, e.alert_id) for e in events] == [("updated", row["id"])]
    assert m2.get_open(10, "spike").opened_at_us == T0  # memory now uses the stored key
    await apply(pool, store2, m2.process(det((0, T0 + 2 * MIN, "spike"))))
    (row,) = await rows(pool)
    assert row["trigger_count"] == 3


async def test_maintenance_windows_from_the_table_mute_detections(pool):
    m = new_manager()
    store = AlertStore(pool, m)
    start = datetime.fromtimestamp(T0 / 1e6, timezone.utc)
    w = await store.add_maintenance("station-*", start, start + timedelta(hours=1), "calibration")
    m.set_maintenance(await store.maintenance())
    changes = m.process(det((0, T0 + MIN, "spike"), (1, T0 + 2 * MIN, "spike")))
    assert not changes and changes.muted == 2
    await store.delete_maintenance(w.id)
    m.set_maintenance(await store.maintenance())
    assert m.process(det((0, T0 + 3 * MIN, "spike"))).alerts
    with pytest.raises(AlertNotFound):
        await store.delete_maintenance(w.id)


async def test_invalid_transitions_and_unknown_ids_raise_typed_errors(pool):
    m = new_manager()
    store = AlertStore(pool, m)
    await apply(pool, store, m.process(det((0, T0, "spike"))))
    (row,) = await rows(pool)
    await store.acknowledge(row["id"], "ana")
    with pytest.raises(InvalidTransition, match="already acknowledged"):
        await store.acknowledge(row["id"], "ben")
    await store.resolve(row["id"])
    with pytest.raises(InvalidTransition, match="already resolved"):
        await store.resolve(row["id"])
    with pytest.raises(InvalidTransition, match="cannot be acknowledged"):
        await store.acknowledge(row["id"])
    with pytest.raises(AlertNotFound, match="no alert with id 999"):
        await store.get(999)


async def test_silence_alert_roundtrip(pool):
    m = new_manager(resolve_after_windows=1)
    store = AlertStore(pool, m)
    gap = 6 * 3600 * 1_000_000
    events = await apply(pool, store, m.process(silences=SilencesRef.of([1], [T0], [gap], [1.0])))
    assert [(e.kind, e.payload["detector"], e.payload["severity"]) for e in events] == \
        [("opened", "silence", "critical")]
    assert events[0].payload["triggers"][0]["value"] == 6 * 3600
    events = await apply(pool, store, m.process(closed=win(1, T0 + gap + MIN)))
    assert [e.kind for e in events] == ["resolved"]


async def test_event_log_reads_in_id_order(pool):
    m = new_manager()
    store = AlertStore(pool, m)
    ev = await apply(pool, store, m.process(det((0, T0, "spike"), (1, T0, "spike"))))
    assert await store.latest_event_id() == ev[-1].id
    after = await store.events_after(ev[0].id)
    assert [e.id for e in after] == [ev[1].id]
    assert after[0].payload == ev[1].payload


async def test_list_filters_and_cursor_pagination(pool):
    m = new_manager()
    store = AlertStore(pool, m)
    m.assign(list(range(2, 12)), list(range(20, 30)), [f"kerb-{i}" for i in range(10)], ["speed"] * 10)
    await apply(pool, store, m.process(det(*[(s, T0 + s * MIN, "spike") for s in range(12)])))
    await apply(pool, store, m.process(det((0, T0 + 100 * MIN, "flatline"))))
    items, cursor = await store.list(AlertQuery.parse({"sensor": "kerb-*", "limit": "4"}))
    seen = [i["id"] for i in items]
    while cursor:
        items, cursor = await store.list(AlertQuery.parse({"sensor": "kerb-*", "limit": "4", "cursor": cursor}))
        seen += [i["id"] for i in items]
    assert len(seen) == 10 and seen == sorted(seen, reverse=True)
    items, _ = await store.list(AlertQuery.parse({"detector": "flatline"}))
    assert [(i["sensor_id"], i["detector"]) for i in items] == [("station-a", "flatline")]
    items, _ = await store.list(AlertQuery.parse({"metric": "pm2_5,no2", "state": "open"}))
    assert len(items) == 3
    since = datetime.fromtimestamp((T0 + 10 * MIN) / 1e6, timezone.utc).isoformat()
    items, _ = await store.list(AlertQuery.parse({"since": since}))
    assert sorted(i["series_id"] for i in items) == [10, 28, 29]


async def test_a_whole_source_going_quiet_is_one_incident_in_the_database(pool):
    """12 series of one MQTT source go quiet together: the live check reports each of them (again
    every check), their first readings after the gap carry a silence decision too; all of it is ONE
    stored alert for the source, which resolves once the series report normally. A lone silent
    series of another source keeps its own alert."""
    m = AlertManager(AlertSettings(resolve_after_windows=1))
    n = 12
    m.assign(list(range(n)), list(range(100, 100 + n)), [f"kerb-{i}" for i in range(n)], ["occupancy"] * n)
    m.assign([n], [500], ["lamp-1"], ["lux"])
    store = AlertStore(pool, m)
    gap = 10 * MIN
    north = ["mqtt-north"] * n
    quiet = SilencesRef.of(list(range(n)), [T0] * n, [gap] * n, [0.8] * n, north)
    ev = await apply(pool, store, m.process(silences=quiet))
    assert [e.kind for e in ev] == ["opened"]
    again = SilencesRef.of(list(range(n)), [T0] * n, [gap + MIN] * n, [0.9] * n, north)
    assert not (await apply(pool, store, m.process(silences=again)))  # the same quiet spell
    lone = SilencesRef.of([n], [T0], [gap], [0.8], ["mqtt-south"])
    await apply(pool, store, m.process(silences=lone))
    back = Detections.of([{"slot": s, "ts_us": T0 + gap + s, "detector": "silence", "score": 0.8, "value": 1.0,
                           "group": "mqtt-north"} for s in range(n)])
    ev = await apply(pool, store, m.process(back))
    assert [e.kind for e in ev] == ["updated"]
    stored = await rows(pool)
    assert len(stored) == 2
    incident = next(r for r in stored if r["sensor_id"] == "source:mqtt-north")
    assert incident["metric"] == "*" and incident["detector"] == "silence" and incident["state"] == "open"
    assert incident["trigger_count"] == 2 * n and incident["severity"] == "critical"
    assert next(r for r in stored if r["sensor_id"] == "lamp-1")["series_id"] == 500
    # the source reports normally again: its incident resolves (one event), nothing else opens
    ev = await apply(pool, store, m.process(closed=win(3, T0 + gap + MIN)))
    assert [e.kind for e in ev] == ["resolved"]
    stored = await rows(pool, "SELECT * FROM alerts WHERE sensor_id = 'source:mqtt-north'")
    assert [r["state"] for r in stored] == ["resolved"]
