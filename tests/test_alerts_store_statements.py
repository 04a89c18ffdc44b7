"""The batch's alert writes in two statements (alerts/store.py, ``lat17``) against the statements
as they were written before: the same rows, ids and events over generated alert-change sequences
(auto-resolve, re-open, flapping, API acknowledge/resolve, redelivery, a restart with and without
``restore``, which takes the adopting path), in real PostgreSQL. And what the fewer statements
must still do: two statements for a usual batch, the event-order lock taken before any event id
is drawn."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings as hsettings, strategies as st

import services
from urbanpulse.alerts import store as store_module
from urbanpulse.alerts.inputs import ClosedWindowsRef, Detections
from urbanpulse.alerts.lifecycle import AlertManager
from urbanpulse.alerts.model import AlertChanges, AlertEvent, AlertSnapshot
from urbanpulse.alerts.settings import AlertSettings
from urbanpulse.alerts.store import EVENTS_LOCK, AlertStore

pytestmark = pytest.mark.integration

MIN = 60_000_000
T0 = 1_700_000_000_000_000
SLOTS = 3

# the statements as apply sent them before: the open-alerts SELECT, then the upsert, then the
# event-order lock, then the event insert
_OPEN_ELSEWHERE_SQL = """
SELECT * FROM alerts
WHERE state <> 'resolved'
  AND (series_id, detector) IN (SELECT * FROM unnest($1::int4[], $2::text[]))
"""
_EVENTS_SQL = """
INSERT INTO alert_events (alert_id, kind, state, reopen_count, trigger_count, payload)
SELECT u.alert_id, u.kind, u.state, u.reopen_count, u.trigger_count, u.payload::jsonb
FROM unnest($1::int8[], $2::text[], $3::text[], $4::int4[], $5::int8[], $6::text[]) WITH ORDINALITY
     AS u(alert_id, kind, state, reopen_count, trigger_count, payload, ord)
ORDER BY u.ord
ON CONFLICT (alert_id, kind, reopen_count, trigger_count) DO NOTHING
RETURNING id, alert_id, at, kind, state, payload
"""


class StatementByStatementStore(AlertStore):
    """The store's pipeline writes as they were before: one statement per step."""

    async def _upsert(self, conn: asyncpg.Connection, changes: AlertChanges
                      ) -> tuple[dict[tuple[int, str, int], AlertSnapshot], list[asyncpg.Record]]:
        snaps = dict(changes.alerts)
        live = [s for s in snaps.values() if s.state != "resolved"]
        if live:
            rows = await conn.fetch(_OPEN_ELSEWHERE_SQL, [s.series_id for s in live], [s.detector for s in live])
            snaps = self._adopt_open_rows(changes, rows)
        order = store_module._upsert_order(snaps)
        return snaps, await conn.fetch(store_module._UPSERT_SQL, *store_module._columns(order))

    async def _insert_events(self, conn: asyncpg.Connection, pending: list[tuple]) -> list[AlertEvent]:
        if not pending:
            return []
        await conn.execute("SELECT pg_advisory_xact_lock($1)", EVENTS_LOCK)
        cols = list(zip(*pending))
        rows = await conn.fetch(_EVENTS_SQL, list(cols[0]), list(cols[1]), list(cols[2]), list(cols[3]),
                                list(cols[4]), [orjson.dumps(p).decode() for p in cols[5]])
        return sorted((AlertEvent.from_row(r) for r in rows), key=lambda e: e.id)


@pytest.fixture(scope="module")
def two_databases(pg_dsn: str) -> Iterator[tuple[str, str]]:
    """Two migrated databases: the statements of before in one, this module's in the other."""
    with services.migrated_database(pg_dsn) as before, services.migrated_database(pg_dsn) as now:
        yield before, now


def _manager() -> AlertManager:
    m = AlertManager(AlertSettings(resolve_after_windows=1, flap_threshold=2))
    m.assign(list(range(SLOTS)), [10 + s for s in range(SLOTS)], [f"station-{s}" for s in range(SLOTS)],
             ["pm2_5"] * SLOTS)
    return m


# a step: detections (slot, detector) at the step's time; a closed window of a slot (auto-resolve);
# an API acknowledge / resolve of the n-th alert; the last changes written again (redelivery);
# a restart, with or without restoring the open alerts (without: the adopting path)
_detection = st.tuples(st.integers(0, SLOTS - 1), st.sampled_from(["spike", "flatline"]))
_step = st.one_of(
    st.tuples(st.just("detect"), st.lists(_detection, min_size=1, max_size=4)),
    st.tuples(st.just("close"), st.integers(0, SLOTS - 1)),
    st.tuples(st.sampled_from(["ack", "resolve"]), st.integers(0, 5)),
    st.tuples(st.just("redeliver"), st.none()),
    st.tuples(st.just("restart"), st.booleans()),
)

# wall-clock columns (now() of one database or the other); everything else must be equal
_WALL_CLOCK = ("updated_at", "acknowledged_at", "at")


def _comparable(d: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in d.items() if k not in _WALL_CLOCK}
    if out.get("resolved_by") not in (None, "auto"):
        out.pop("resolved_at", None)  # a user's resolve: now()
    if "payload" in out:
        payload = out["payload"]
        out["payload"] = _comparable(orjson.loads(payload) if isinstance(payload, str) else payload)
    return out


class _Side:
    """One database, its manager and its store, driven through the same steps as the other side."""

    def __init__(self, pool: asyncpg.Pool, store_type: type[AlertStore]) -> None:
        self.pool = pool
        self.store_type = store_type
        self.manager = _manager()
        self.store = store_type(pool, self.manager)
        self.last: AlertChanges | None = None

    async def apply(self, changes: AlertChanges | None) -> list[dict[str, Any]]:
        if not changes:
            return []
        async with self.pool.acquire() as conn, conn.transaction():
            events = await self.store.apply(conn, changes)
        return [_comparable({"id": e.id, "alert_id": e.alert_id, "kind": e.kind, "state": e.state,
                             "payload": e.payload}) for e in events]

    async def step(self, kind: str, arg: Any, t: int) -> Any:  # noqa: ANN401
        m = self.manager
        if kind == "detect":
            changes = m.process(Detections.of([{"slot": s, "ts_us": t, "detector": d, "score": 0.9, "value": 400.0}
                                               for s, d in arg]))
            self.last = changes
            return await self.apply(changes)
        if kind == "close":
            changes = m.process(closed=ClosedWindowsRef.of([arg], [t], [t + MIN]))
            self.last = changes
            return await self.apply(changes)
        if kind == "redeliver":
            return await self.apply(self.last)
        if kind == "restart":
            self.manager = _manager()
            self.store = self.store_type(self.pool, self.manager)
            if arg:
                async with self.pool.acquire() as conn:
                    self.manager.restore(await self.store.load_recent(conn, self.manager.settings.flap_window))
            return None
        ids = [r["id"] for r in await self.pool.fetch("SELECT id FROM alerts ORDER BY id")]
        if not ids:
            return None
        try:
            if kind == "ack":
                _, events = await self.store.acknowledge(ids[arg % len(ids)], "ana")
            else:
                _, events = await self.store.resolve(ids[arg % len(ids)], "ben")
        except Exception as exc:  # noqa: BLE001 - an invalid transition must be invalid on both sides
            return type(exc).__name__
        return [e.kind for e in events]

    async def tables(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        alerts = [_comparable(dict(r)) for r in await self.pool.fetch("SELECT * FROM alerts ORDER BY id")]
        events = [_comparable(dict(r)) for r in await self.pool.fetch("SELECT * FROM alert_events ORDER BY id")]
        return alerts, events


@given(steps=st.lists(st.tuples(_step, st.integers(1, 12)), min_size=1, max_size=14))
# the adopting path: an alert open in the database that a restarted manager does not know
@example(steps=[(("detect", [(0, "spike")]), 1), (("restart", False), 1), (("detect", [(0, "spike")]), 1),
                (("redeliver", None), 1), (("detect", [(0, "spike"), (1, "spike")]), 1)])
@example(steps=[(("detect", [(0, "spike"), (1, "flatline")]), 1), (("ack", 0), 1), (("restart", False), 2),
                (("detect", [(0, "spike"), (1, "flatline")]), 1), (("close", 1), 1), (("redeliver", None), 1)])
@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_two_statements_store_the_same_alerts_and_events_as_the_statements_before(
        two_databases: tuple[str, str], steps: list[tuple[tuple[str, Any], int]]) -> None:
    async def scenario() -> None:
        pools = [await asyncpg.create_pool(dsn, min_size=1, max_size=2) for dsn in two_databases]
        try:
            for pool in pools:
                await pool.execute("TRUNCATE alerts, alert_events RESTART IDENTITY")
            before, now = _Side(pools[0], StatementByStatementStore), _Side(pools[1], AlertStore)
            t = T0
            for (kind, arg), minutes in steps:
                t += minutes * MIN
                assert await now.step(kind, arg, t) == await before.step(kind, arg, t), (kind, arg)
            assert await now.tables() == await before.tables()
        finally:
            for pool in pools:
                await pool.close()

    asyncio.run(scenario())


def test_a_usual_batch_is_two_statements_and_takes_the_event_order_lock(two_databases: tuple[str, str]) -> None:
    """One statement for the alerts, one for the events (with the lock), where there were four."""
    async def scenario() -> None:
        conn = await asyncpg.connect(two_databases[1])
        other = await asyncpg.connect(two_databases[1])
        try:
            await conn.execute("TRUNCATE alerts, alert_events RESTART IDENTITY")
            m = _manager()
            store = AlertStore(None, m)
            sent: list[str] = []
            conn.add_query_logger(lambda record: sent.append(record.query))

            def batch(t: int) -> AlertChanges:
                return m.process(Detections.of([{"slot": 0, "ts_us": t, "detector": "spike", "score": 0.9,
                                                 "value": 400.0}]))

            async with conn.transaction():  # the connection's first use also asks for type information
                await store.apply(conn, batch(T0))
            async with conn.transaction():
                events = await store.apply(conn, batch(T0 + MIN))
                assert [e.kind for e in events] == ["updated"]
                await asyncio.sleep(0.05)  # the query logger is called soon after each statement
                statements = [q for q in sent[sent.index("COMMIT;") + 1:] if q not in ("BEGIN;", "COMMIT;")]
                assert len(statements) == 2, statements
                # the lock is held to COMMIT: another transaction cannot take it now
                assert await other.fetchval("SELECT pg_try_advisory_xact_lock($1)", EVENTS_LOCK) is False
            assert await other.fetchval("SELECT pg_try_advisory_lock($1)", EVENTS_LOCK) is True
            await other.execute("SELECT pg_advisory_unlock($1)", EVENTS_LOCK)
        finally:
            await conn.close()
            await other.close()

    asyncio.run(scenario())


def test_a_waiting_event_insert_draws_no_id_before_it_holds_the_lock(two_databases: tuple[str, str]) -> None:
    """Event ids become visible in increasing order: an insert waiting for the event-order lock
    has not drawn an id from the sequence yet, so its ids are above every id of the transaction
    it waits for."""
    async def scenario() -> None:
        pool = await asyncpg.create_pool(two_databases[1], min_size=3, max_size=3)
        try:
            await pool.execute("TRUNCATE alerts, alert_events RESTART IDENTITY")
            m = _manager()
            store = AlertStore(pool, m)
            first_conn = await pool.acquire()
            tx = first_conn.transaction()
            await tx.start()
            first = await store.apply(first_conn, m.process(Detections.of(
                [{"slot": 0, "ts_us": T0, "detector": "spike", "score": 0.9, "value": 400.0}])))

            async def second_batch() -> list[AlertEvent]:
                async with pool.acquire() as conn, conn.transaction():
                    return await store.apply(conn, m.process(Detections.of(
                        [{"slot": 1, "ts_us": T0, "detector": "spike", "score": 0.9, "value": 400.0}])))

            second = asyncio.create_task(second_batch())
            waiting = 0
            for _ in range(500):  # until the second insert waits for the advisory lock
                waiting = await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory' AND datname = current_database()")
                if waiting:
                    break
                await asyncio.sleep(0.01)
            assert waiting == 1
            assert not second.done()
            drawn = await pool.fetchval("SELECT last_value FROM alert_events_id_seq")
            assert drawn == first[-1].id  # nothing drawn by the waiting insert
            await tx.commit()
            await pool.release(first_conn)
            later = await asyncio.wait_for(second, 10)
            assert [e.kind for e in later] == ["opened"] and later[0].id > first[-1].id
        finally:
            await pool.close()

    asyncio.run(scenario())
