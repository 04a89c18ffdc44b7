"""Subject access and erasure for one device (issue 15 item 6, docs/privacy.md).

A personal device is stored under one pseudonym per rotation period, so its data is found by
computing its pseudonyms (needs the key) for every period back to ``since``; a device of a
class that is not pseudonymised is found by its id as sent. Both operations write a row to the
append-only ``privacy_audit`` table (who, when, what, how many rows), naming the subject only by a
keyed digest (never its raw id)."""

from __future__ import annotations

import csv
import getpass
import hashlib
import hmac
import io
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import numpy as np

from urbanpulse.privacy.pseudonyms import Pseudonymiser


_DAY = timedelta(days=1)


def subject_ids(device: str, pseudonymiser: Pseudonymiser | None, since: datetime,
                until: datetime | None = None) -> list[str]:
    """The ids ``device`` may be stored under: as sent, and its pseudonym in every period from ``since``."""
    ids = [device]
    if pseudonymiser is not None:
        until = until or datetime.now(timezone.utc) + _DAY
        days = np.arange(int(since.timestamp() // 86400), int(until.timestamp() // 86400) + 1, dtype=np.int64)
        codes = np.unique(pseudonymiser.period_codes(days * 86_400_000_000))
        ids += [pseudonymiser.pseudonym(device, pseudonymiser.period_label(int(c))) for c in codes]
    return ids


def subject_digest(device: str, key: bytes | None) -> str:
    """How the audit table names a subject: HMAC of the id under the key (SHA-256 without one)."""
    data = ("subject\x00" + device).encode("utf-8", "surrogatepass")
    digest = hmac.new(key, data, hashlib.sha256).hexdigest() if key else hashlib.sha256(data).hexdigest()
    return "subject-" + digest[:32]


async def subject_series(conn: asyncpg.Connection, device: str, pseudonymiser: Pseudonymiser | None,
                         since: datetime) -> list[int]:
    """Ids of the series ``device`` is stored under (as sent or pseudonymised since ``since``): what
    a service's series registry must forget once the device is erased."""
    ids = subject_ids(device, pseudonymiser, since)
    return [r[0] for r in await conn.fetch("SELECT id FROM series WHERE sensor_id = ANY($1::text[])", ids)]


async def _collect(conn: asyncpg.Connection, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    series = await conn.fetch("SELECT id, sensor_id, metric FROM series WHERE sensor_id = ANY($1::text[])", ids)
    sids = [r["id"] for r in series]
    readings = await conn.fetch(
        "SELECT s.sensor_id, s.metric, r.ts, r.value, r.lat, r.lon, r.flags FROM readings r "
        "JOIN series s ON s.id = r.series_id WHERE r.series_id = ANY($1::int4[]) ORDER BY s.sensor_id, s.metric, r.ts",
        sids)
    alerts = await conn.fetch("SELECT * FROM alerts WHERE series_id = ANY($1::int4[]) OR sensor_id = ANY($2::text[]) "
                              "ORDER BY id", sids, ids)
    quarantine = await conn.fetch(
        "SELECT id, received_at, source, topic, reason, detail, payload FROM quarantine q "
        "WHERE EXISTS (SELECT 1 FROM unnest($1::text[]) AS i(v) WHERE position(convert_to(i.v, 'UTF8') IN q.payload) > 0 "
        "OR position(i.v IN coalesce(q.topic, '')) > 0) ORDER BY id", ids)
    return {"series": [dict(r) for r in series], "readings": [dict(r) for r in readings],
            "alerts": [dict(r) for r in alerts], "quarantine": [dict(r) for r in quarantine]}


async def _audit(conn: asyncpg.Connection, actor: str, action: str, subject: str, rows: dict[str, int]) -> None:
    await conn.execute("INSERT INTO privacy_audit (actor, action, subject, rows) VALUES ($1, $2, $3, $4::jsonb)",
                       actor, action, subject, json.dumps(rows))


async def export_subject(conn: asyncpg.Connection, device: str, pseudonymiser: Pseudonymiser | None,
                         key: bytes | None, since: datetime, actor: str | None = None) -> dict[str, list[dict]]:
    """Everything held for ``device`` (series, readings, alerts, quarantine rows); audited."""
    async with conn.transaction(isolation="repeatable_read"):
        held = await _collect(conn, subject_ids(device, pseudonymiser, since))
        await _audit(conn, actor or getpass.getuser(), "subject_export", subject_digest(device, key),
                     {k: len(v) for k, v in held.items()})
    return held


async def erase_subject(conn: asyncpg.Connection, device: str, pseudonymiser: Pseudonymiser | None,
                        key: bytes | None, since: datetime, actor: str | None = None) -> dict[str, int]:
    """Delete every row derived from ``device`` in one transaction; audited. Rollups are per
    series and a device's series are its own, so removing its rollup rows *is* the recomputation
    without it."""
    ids = subject_ids(device, pseudonymiser, since)
    async with conn.transaction():
        held = await _collect(conn, ids)
        sids = [r["id"] for r in held["series"]]
        alert_ids = [r["id"] for r in held["alerts"]]
        n: dict[str, int] = {}

        async def delete(name: str, sql: str, *args: Any) -> None:
            status = await conn.execute(sql, *args)
            n[name] = n.get(name, 0) + int(status.rsplit(" ", 1)[1])

        await delete("readings", "DELETE FROM readings WHERE series_id = ANY($1::int4[])", sids)
        for table in ("rollup_1m", "rollup_1h", "rollup_1d", "rollup_series"):
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
                await delete(table, f"DELETE FROM {table} WHERE series_id = ANY($1::int4[])", sids)
        await delete("alert_events", "DELETE FROM alert_events WHERE alert_id = ANY($1::int8[])", alert_ids)
        await delete("alerts", "DELETE FROM alerts WHERE id = ANY($1::int8[])", alert_ids)
        await delete("quarantine", "DELETE FROM quarantine WHERE id = ANY($1::int8[])",
                     [r["id"] for r in held["quarantine"]])
        await delete("series", "DELETE FROM series WHERE id = ANY($1::int4[])", sids)
        await _audit(conn, actor or getpass.getuser(), "subject_erase", subject_digest(device, key), n)
    return n


def to_json(held: dict[str, list[dict]]) -> str:
    """The export as one JSON document (bytes as UTF-8 text where they are, else hex)."""
    def plain(v: object) -> object:
        if isinstance(v, datetime):
            return v.isoformat()
        if isinstance(v, (bytes, bytearray)):
            try:
                return bytes(v).decode("utf-8")
            except UnicodeDecodeError:
                return "hex:" + bytes(v).hex()
        return v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
    return json.dumps({t: [{k: plain(v) for k, v in r.items()} for r in rows] for t, rows in held.items()}, indent=2)


def to_csv(held: dict[str, list[dict]]) -> str:
    """The export as CSV: one section per table (``# table``), a header row, then its rows."""
    out = io.StringIO()
    doc = json.loads(to_json(held))
    for table, rows in doc.items():
        out.write(f"# {table}\n")
        cols = list(rows[0]) if rows else []
        w = csv.writer(out, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([r[c] for c in cols])
    return out.getvalue()
