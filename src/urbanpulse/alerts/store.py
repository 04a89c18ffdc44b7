"""Alerts in PostgreSQL: the pipeline's upserts, the API's state changes, queries and the event log.

Guarantees
- ``apply`` runs inside the caller's (batch) transaction and is idempotent: alerts are upserted
  by their natural key and events by their identity (alert, kind, reopen_count, trigger_count),
  so a batch written twice stores every alert and event once.
- The pipeline never undoes a user's decision: within one incarnation of an alert (same
  reopen_count) the stored state only moves forward (open -> acknowledged -> resolved); a
  re-open (higher reopen_count) is the only way back to open.
- Event ids become visible in increasing order: every writer of ``alert_events`` takes the
  transaction-level advisory lock :data:`EVENTS_LOCK` right before inserting and holds it to
  COMMIT, so a reader that has seen id N will never later find a committed id below N. That is
  what makes ``Last-Event-ID`` resume and the SSE poll exact. Take it last (after any row lock)
  so it cannot deadlock with ``SELECT ... FOR NO KEY UPDATE`` of the API.

Round trips: a batch's alert changes are written after every earlier batch committed, and every
later batch waits for them (pipeline/ack_ledger.py), while each round trip also waits for a busy
event loop to send the next statement. So ``apply`` is two statements: the upsert, which looks
for an alert already open under another opening time in the same statement and inserts nothing
if it finds one (then the rare adopting path runs the plain upsert after it), and the event
insert, which takes the event-order lock itself before its first id is drawn.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from urbanpulse.alerts.errors import AlertNotFound, InvalidTransition
from urbanpulse.alerts.maintenance import MaintenanceWindow
from urbanpulse.alerts.lifecycle import AlertManager
from urbanpulse.alerts.model import (Alert, AlertChanges, AlertEvent, AlertSnapshot, PendingEvent, alert_from_row, dt_to_us,
                                     iso, row_to_api, us_to_dt)
from urbanpulse.alerts.query import AlertQuery, encode_cursor

log = logging.getLogger(__name__)

EVENTS_LOCK = 0x75_70_61_65  # "upae"

# what a (re)starting manager restores: every open/acknowledged alert, and the latest resolved one
# per (series, detector) that may still re-open (within the flap window of now or of the newest trigger)
_LOAD_RECENT_SQL = """
SELECT * FROM alerts WHERE state <> 'resolved'
UNION ALL
SELECT * FROM (
    SELECT DISTINCT ON (series_id, detector) * FROM alerts
    WHERE state = 'resolved'
      AND (updated_at >= now() - $1::interval
           OR last_triggered_at >= (SELECT max(last_triggered_at) FROM alerts) - $1::interval)
    ORDER BY series_id, detector, opened_at DESC) recent
"""

_RANK = "array_position(ARRAY['open','acknowledged','resolved']::text[], {})"
_SEV = "array_position(ARRAY['info','warning','critical']::text[], {})"

def _operator_set(column: str, marker: str) -> str:
    """SET clause for a column the API owns (ack/resolve): a re-opening replaces it, an older
    pipeline copy never does, and a value the operator already set is kept."""
    return f"""{column} = CASE
        WHEN EXCLUDED.reopen_count > a.reopen_count THEN EXCLUDED.{column}
        WHEN EXCLUDED.reopen_count < a.reopen_count OR a.{marker} IS NOT NULL THEN a.{column}
        ELSE EXCLUDED.{column} END"""


_UPSERT_SQL = f"""
INSERT INTO alerts AS a (series_id, sensor_id, metric, detector, severity, state, flapping, reopen_count,
    opened_at, last_triggered_at, trigger_count, max_score, triggers, acknowledged_at, acknowledged_by,
    resolved_at, resolved_by, note)
SELECT u.series_id, u.sensor_id, u.metric, u.detector, u.severity, u.state, u.flapping, u.reopen_count,
       u.opened_at, u.last_triggered_at, u.trigger_count, u.max_score, u.triggers::jsonb, u.acknowledged_at,
       u.acknowledged_by, u.resolved_at, u.resolved_by, u.note
FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::int4[],
            $9::timestamptz[], $10::timestamptz[], $11::int8[], $12::float8[], $13::text[], $14::timestamptz[],
            $15::text[], $16::timestamptz[], $17::text[], $18::text[]) WITH ORDINALITY
     AS u(series_id, sensor_id, metric, detector, severity, state, flapping, reopen_count, opened_at,
          last_triggered_at, trigger_count, max_score, triggers, acknowledged_at, acknowledged_by,
          resolved_at, resolved_by, note, ord)
ORDER BY u.ord
ON CONFLICT (series_id, detector, opened_at) DO UPDATE SET
    sensor_id = EXCLUDED.sensor_id,
    metric = EXCLUDED.metric,
    severity = CASE WHEN {_SEV.format('EXCLUDED.severity')} > {_SEV.format('a.severity')}
                    THEN EXCLUDED.severity ELSE a.severity END,
    state = CASE
        WHEN EXCLUDED.reopen_count > a.reopen_count THEN EXCLUDED.state
        WHEN EXCLUDED.reopen_count < a.reopen_count THEN a.state
        WHEN {_RANK.format('EXCLUDED.state')} > {_RANK.format('a.state')} THEN EXCLUDED.state
        ELSE a.state END,
    {_operator_set('acknowledged_at', 'acknowledged_at')},
    {_operator_set('acknowledged_by', 'acknowledged_at')},
    {_operator_set('resolved_at', 'resolved_at')},
    {_operator_set('resolved_by', 'resolved_at')},
    flapping = a.flapping OR EXCLUDED.flapping,
    reopen_count = GREATEST(a.reopen_count, EXCLUDED.reopen_count),
    last_triggered_at = GREATEST(a.last_triggered_at, EXCLUDED.last_triggered_at),
    trigger_count = GREATEST(a.trigger_count, EXCLUDED.trigger_count),
    max_score = GREATEST(a.max_score, EXCLUDED.max_score),
    triggers = CASE WHEN EXCLUDED.trigger_count >= a.trigger_count THEN EXCLUDED.triggers ELSE a.triggers END,
    note = COALESCE(EXCLUDED.note, a.note),
    updated_at = now()
RETURNING *
"""

# The upsert, unless an alert of a live (unresolved) snapshot's series and detector ($19, $20) is
# already open under an opening time the batch does not write: then nothing is inserted and those
# rows come back (``found_elsewhere``) for ``_adopt_open_rows``. One round trip instead of two.
_UPSERT_UNLESS_ELSEWHERE = _UPSERT_SQL.replace("ORDER BY u.ord", "WHERE NOT EXISTS (SELECT FROM elsewhere)\nORDER BY u.ord")
_UPSERT_UNLESS_OPEN_ELSEWHERE_SQL = f"""
WITH elsewhere AS (
    SELECT * FROM alerts
    WHERE state <> 'resolved'
      AND (series_id, detector) IN (SELECT * FROM unnest($19::int4[], $20::text[]))
      AND (series_id, detector, opened_at) NOT IN (SELECT * FROM unnest($1::int4[], $4::text[], $9::timestamptz[]))
), upserted AS (
{_UPSERT_UNLESS_ELSEWHERE}
)
SELECT false AS found_elsewhere, * FROM upserted
UNION ALL
SELECT true, * FROM elsewhere
"""

_EVENTS_SQL = """
INSERT INTO alert_events (alert_id, kind, state, reopen_count, trigger_count, payload)
SELECT u.alert_id, u.kind, u.state, u.reopen_count, u.trigger_count, u.payload::jsonb
FROM unnest($1::int8[], $2::text[], $3::text[], $4::int4[], $5::int8[], $6::text[]) WITH ORDINALITY
     AS u(alert_id, kind, state, reopen_count, trigger_count, payload, ord)
WHERE (SELECT true FROM pg_advisory_xact_lock($7))  -- the event-order lock, once, before any id is drawn
ORDER BY u.ord
ON CONFLICT (alert_id, kind, reopen_count, trigger_count) DO NOTHING
RETURNING id, alert_id, at, kind, state, payload
"""


def _json(obj: Any) -> str:
    return orjson.dumps(obj).decode()


class AlertStore:
    """Reads and writes the alert tables. ``pool`` serves the API; ``apply`` uses the caller's
    connection. With a ``manager``, every state found or set in the database is fed back to it."""

    def __init__(self, pool: asyncpg.Pool | None = None, manager: AlertManager | None = None) -> None:
        self.pool = pool
        self.manager = manager

    # -- the pipeline ----------------------------------------------------------------------

    async def load_recent(self, conn: asyncpg.Connection, flap_window: timedelta) -> list[Alert]:
        """The alerts a (re)starting manager must know (``AlertManager.restore``): open and
        acknowledged ones, and recently resolved ones that may still re-open."""
        return [alert_from_row(r) for r in await conn.fetch(_LOAD_RECENT_SQL, flap_window)]

    async def apply(self, conn: asyncpg.Connection, changes: AlertChanges) -> list[AlertEvent]:
        """Write one batch's alert changes inside the caller's transaction; returns the events
        that were newly stored, with their ids, in id order. Call it last before COMMIT (it takes
        the event-order lock when there are events), publish the events only after COMMIT.
        Two statements in the usual case (module doc)."""
        if not changes.alerts:
            return []
        snaps, rows = await self._upsert(conn, changes)
        stored = {(r["series_id"], r["detector"], dt_to_us(r["opened_at"])): r for r in rows}
        if self.manager is not None:
            for key, snap in snaps.items():
                row = stored[key]
                if row["state"] != snap.state or row["note"] != snap.note:
                    self.manager.observe_stored(row)
        events = changes.events
        last = {e.alert.key: i for i, e in enumerate(events)}
        pending = []
        for i, e in enumerate(events):
            row = stored[e.alert.key]
            payload = row_to_api(row) if last[e.alert.key] == i else e.alert.to_api(row["id"], row["updated_at"])
            pending.append((row["id"], e.kind, payload["state"], e.alert.reopen_count, e.alert.trigger_count, payload))
        return await self._insert_events(conn, pending)

    async def _upsert(self, conn: asyncpg.Connection, changes: AlertChanges
                      ) -> tuple[dict[tuple[int, str, int], AlertSnapshot], list[asyncpg.Record]]:
        """Upsert the batch's snapshots (adopting alerts open under another opening time first);
        returns the snapshots written, by key, and the stored rows."""
        snaps = dict(changes.alerts)
        live = [s for s in snaps.values() if s.state != "resolved"]
        rows = await conn.fetch(_UPSERT_UNLESS_OPEN_ELSEWHERE_SQL, *_columns(_upsert_order(snaps)),
                                [s.series_id for s in live], [s.detector for s in live])
        elsewhere = [r for r in rows if r["found_elsewhere"]]
        if not elsewhere:
            return snaps, rows
        # nothing was inserted: adopt the open rows, then upsert what that made
        snaps = self._adopt_open_rows(changes, elsewhere)
        return snaps, await conn.fetch(_UPSERT_SQL, *_columns(_upsert_order(snaps)))

    def _adopt_open_rows(self, changes: AlertChanges,
                         rows: list[asyncpg.Record]) -> dict[tuple[int, str, int], AlertSnapshot]:
        """Snapshots by key, with an alert that is new in memory but already open in the
        database under another opening time (``rows``: opened by another worker, or before a
        restart without ``AlertManager.restore``) merged into the stored row: its triggers are
        added to the stored ones and its events become one ``updated`` event."""
        snaps = dict(changes.alerts)
        live = [s for s in snaps.values() if s.state != "resolved"]
        for row in rows:
            stored_key = (row["series_id"], row["detector"], dt_to_us(row["opened_at"]) or 0)
            if stored_key in snaps:
                continue  # this very alert (or one this batch resolves)
            for s in live:
                if (s.series_id, s.detector) != stored_key[:2] or s.key not in snaps:
                    continue
                log.warning("alert for series %d / %s is already open in the database since %s; merging into it",
                            s.series_id, s.detector, row["opened_at"])
                stored = alert_from_row(row)
                max_triggers = self.manager.settings.max_triggers if self.manager is not None else 20
                merged = replace(
                    s, opened_at_us=stored.opened_at_us, reopen_count=stored.reopen_count,
                    flapping=stored.flapping or s.flapping, trigger_count=stored.trigger_count + s.trigger_count,
                    max_score=max(stored.max_score, s.max_score),
                    triggers=tuple([*stored.triggers, *s.triggers][-max_triggers:]))
                del snaps[s.key]
                snaps[merged.key] = merged
                changes.alerts = snaps  # a retry of this batch writes the merged row directly
                changes.events[:] = [e for e in changes.events if e.alert.key != s.key]
                changes.events.append(PendingEvent("updated", merged))
                if self.manager is not None:
                    self.manager.adopt(s.opened_at_us, stored)
        return snaps

    async def _insert_events(self, conn: asyncpg.Connection, pending: list[tuple]) -> list[AlertEvent]:
        if not pending:
            return []
        cols = list(zip(*pending))
        rows = await conn.fetch(_EVENTS_SQL, list(cols[0]), list(cols[1]), list(cols[2]), list(cols[3]),
                                list(cols[4]), [_json(p) for p in cols[5]], EVENTS_LOCK)
        return sorted((AlertEvent.from_row(r) for r in rows), key=lambda e: e.id)

    # -- the API ---------------------------------------------------------------------------

    def _pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise RuntimeError("AlertStore has no pool; AlertService.start(pool) sets it")
        return self.pool

    async def acknowledge(self, alert_id: int, by: str | None = None,
                          note: str | None = None) -> tuple[dict[str, Any], list[AlertEvent]]:
        """open -> acknowledged. Raises AlertNotFound / InvalidTransition."""
        return await self._transition(alert_id, "acknowledged", by, note)

    async def resolve(self, alert_id: int, by: str | None = None,
                      note: str | None = None) -> tuple[dict[str, Any], list[AlertEvent]]:
        """open or acknowledged -> resolved (by a user). Raises AlertNotFound / InvalidTransition."""
        return await self._transition(alert_id, "resolved", by, note)

    async def _transition(self, alert_id: int, target: str, by: str | None,
                          note: str | None) -> tuple[dict[str, Any], list[AlertEvent]]:
        by = by or "api"
        async with self._pool().acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM alerts WHERE id = $1 FOR NO KEY UPDATE", alert_id)
            if row is None:
                raise AlertNotFound(f"no alert with id {alert_id}; list alerts with GET /alerts")
            state = row["state"]
            if target == "acknowledged" and state != "open":
                if state == "acknowledged":
                    msg = (f"alert {alert_id} is already acknowledged (by {row['acknowledged_by']} at "
                           f"{iso(row['acknowledged_at'])}); resolve it with POST /alerts/{alert_id}/resolve")
                else:
                    msg = (f"alert {alert_id} is resolved and cannot be acknowledged; it re-opens by itself "
                           f"if the anomaly returns")
                raise InvalidTransition(msg, state)
            if target == "resolved" and state == "resolved":
                raise InvalidTransition(
                    f"alert {alert_id} is already resolved (by {row['resolved_by']}); nothing to do", state)
            if target == "acknowledged":
                row = await conn.fetchrow("""
                    UPDATE alerts SET state = 'acknowledged', acknowledged_at = now(), acknowledged_by = $2,
                                      note = COALESCE($3, note), updated_at = now()
                    WHERE id = $1 RETURNING *""", alert_id, by, note)
            else:
                row = await conn.fetchrow("""
                    UPDATE alerts SET state = 'resolved', resolved_at = now(), resolved_by = $2,
                                      note = COALESCE($3, note), updated_at = now()
                    WHERE id = $1 RETURNING *""", alert_id, by, note)
            payload = row_to_api(row)
            events = await self._insert_events(
                conn, [(alert_id, target, target, row["reopen_count"], row["trigger_count"], payload)])
        if self.manager is not None:
            self.manager.observe_stored(row)
        return payload, events

    async def get(self, alert_id: int) -> dict[str, Any]:
        async with self._pool().acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM alerts WHERE id = $1", alert_id)
        if row is None:
            raise AlertNotFound(f"no alert with id {alert_id}; list alerts with GET /alerts")
        return row_to_api(row)

    async def list(self, query: AlertQuery) -> tuple[list[dict[str, Any]], str | None]:
        """One page, newest first, and the cursor of the next page (None on the last page)."""
        sql, args = query.sql()
        async with self._pool().acquire() as conn:
            rows = await conn.fetch(sql, *args)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        return [row_to_api(r) for r in rows], encode_cursor(rows[-1]["id"]) if more and rows else None

    # -- the event log ---------------------------------------------------------------------

    async def events_after(self, last_id: int, limit: int = 500, up_to: int | None = None) -> list[AlertEvent]:
        async with self._pool().acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, alert_id, at, kind, state, payload FROM alert_events "
                "WHERE id > $1 AND ($2::int8 IS NULL OR id <= $2) ORDER BY id LIMIT $3", last_id, up_to, limit)
        return [AlertEvent.from_row(r) for r in rows]

    async def latest_event_id(self) -> int:
        async with self._pool().acquire() as conn:
            return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM alert_events"))

    # -- maintenance windows ---------------------------------------------------------------

    @staticmethod
    async def load_maintenance(conn: asyncpg.Connection) -> list[MaintenanceWindow]:
        rows = await conn.fetch("SELECT * FROM maintenance_windows ORDER BY id")
        return [MaintenanceWindow.from_row(r) for r in rows]

    async def maintenance(self) -> list[MaintenanceWindow]:
        async with self._pool().acquire() as conn:
            return await self.load_maintenance(conn)

    async def add_maintenance(self, sensor: str, starts_at: datetime, ends_at: datetime,
                              reason: str = "") -> MaintenanceWindow:
        async with self._pool().acquire() as conn:
            row = await conn.fetchrow(
                "INSERT INTO maintenance_windows (sensor, starts_at, ends_at, reason) VALUES ($1, $2, $3, $4) "
                "RETURNING *", sensor, starts_at, ends_at, reason)
        return MaintenanceWindow.from_row(row)

    async def delete_maintenance(self, window_id: int) -> None:
        async with self._pool().acquire() as conn:
            done = await conn.execute("DELETE FROM maintenance_windows WHERE id = $1", window_id)
        if done.endswith(" 0"):
            raise AlertNotFound(f"no maintenance window with id {window_id}; list them with GET /maintenance")


def _upsert_order(snaps: dict[tuple[int, str, int], AlertSnapshot]) -> list[AlertSnapshot]:
    """Resolutions first, so a resolved row frees the one-open-alert slot before a new one takes it."""
    return sorted(snaps.values(), key=lambda s: s.state != "resolved")


def _columns(snaps: list[AlertSnapshot]) -> list[list[Any]]:
    return [
        [s.series_id for s in snaps], [s.sensor_id for s in snaps], [s.metric for s in snaps],
        [s.detector for s in snaps], [s.severity for s in snaps], [s.state for s in snaps],
        [s.flapping for s in snaps], [s.reopen_count for s in snaps], [us_to_dt(s.opened_at_us) for s in snaps],
        [us_to_dt(s.last_triggered_at_us) for s in snaps], [s.trigger_count for s in snaps],
        [s.max_score for s in snaps], [s.triggers_json() for s in snaps], [s.acknowledged_at for s in snaps],
        [s.acknowledged_by for s in snaps], [us_to_dt(s.resolved_at_us) for s in snaps],
        [s.resolved_by for s in snaps], [s.note for s in snaps],
    ]
