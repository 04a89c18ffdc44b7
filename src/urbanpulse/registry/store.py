"""Reading and changing the registry: every change closes the current version and opens a new one.

All functions take an asyncpg connection (or pool) and run their statements in one transaction,
so a failed change leaves the previous version in place. A change is *effective* from its
``valid_from`` (default: now; a sensor's first version defaults to :data:`EARLIEST`, so readings
stored before it was registered get its position too). Saving a sensor exactly as it is stores
nothing, so re-importing the same file is a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import orjson

# the ingest path's reads live in .current (without the models below); re-exported here with the rest
from urbanpulse.registry.current import Executor, expected_intervals, registered_ids  # noqa: F401
from urbanpulse.registry.errors import InvalidChange, SensorExists, SensorNotFound
from urbanpulse.registry.model import DataClass, Sensor, SensorIn, Status, row_of

#: the first version of a sensor holds from here unless told otherwise (readings before 1900 are rejected)
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
#: how far ahead of the clock a change may be dated (clock skew); the register describes what is,
#: so a move is recorded when it happens, not scheduled
MAX_FUTURE = timedelta(minutes=5)

_FIELDS = ("name", "description", "type", "lat", "lon", "elevation", "area", "tags", "owner", "install_date",
           "status", "data_class", "licence", "metrics")
_SELECT = ("SELECT sensor_id, " + ", ".join(f for f in _FIELDS if f != "metrics")
           + ", metrics::text AS metrics, valid_from, valid_to FROM sensors_history")


def _sensor(record: asyncpg.Record) -> Sensor:
    return Sensor.model_validate(row_of(record))


def _values(sensor: SensorIn) -> list[Any]:
    d = sensor.model_dump(mode="python")
    out: list[Any] = []
    for f in _FIELDS:
        v = d[f]
        if f in ("status", "data_class"):
            v = v.value
        elif f == "metrics":
            v = orjson.dumps(v).decode()
        out.append(v)
    return out


def _same(a: SensorIn, b: SensorIn) -> bool:
    return a.model_dump(exclude={"valid_from", "valid_to"}) == b.model_dump(exclude={"valid_from", "valid_to"})


async def get_sensor(db: Executor, sensor_id: str) -> Sensor | None:
    """The current version of a sensor, or None when it is not registered."""
    row = await db.fetchrow(_SELECT + " WHERE sensor_id = $1 AND valid_to IS NULL", sensor_id)
    return _sensor(row) if row is not None else None


async def sensor_history(db: Executor, sensor_id: str) -> list[Sensor]:
    """Every version of a sensor, oldest first (deleted sensors keep theirs)."""
    rows = await db.fetch(_SELECT + " WHERE sensor_id = $1 ORDER BY valid_from", sensor_id)
    return [_sensor(r) for r in rows]


async def list_sensors(db: Executor, *, area: Sequence[str] | None = None, tags: Sequence[str] | None = None,
                       bbox: tuple[float, float, float, float] | None = None,
                       status: Sequence[Status | str] | None = None,
                       data_classes: Sequence[DataClass | str] | None = None,
                       sensor_ids: Sequence[str] | None = None,
                       after: str | None = None, limit: int | None = None) -> list[Sensor]:
    """Current sensors matching every filter given, ordered by id.

    ``tags``: sensors carrying all of them; ``bbox``: (min_lon, min_lat, max_lon, max_lat), the
    GeoJSON order; ``after``/``limit``: keyset pagination by id.
    """
    where, args = _filters(area=area, tags=tags, bbox=bbox, status=status, data_classes=data_classes,
                           sensor_ids=sensor_ids, prefix="")
    if after is not None:
        args.append(after)
        where.append(f"sensor_id > ${len(args)}")
    sql = _SELECT + " WHERE valid_to IS NULL" + "".join(f" AND {w}" for w in where) + " ORDER BY sensor_id"
    if limit is not None:
        args.append(limit)
        sql += f" LIMIT ${len(args)}"
    return [_sensor(r) for r in await db.fetch(sql, *args)]


def _filters(*, area: Sequence[str] | None, tags: Sequence[str] | None,
             bbox: tuple[float, float, float, float] | None, status: Sequence[Status | str] | None,
             data_classes: Sequence[DataClass | str] | None, sensor_ids: Sequence[str] | None,
             prefix: str, args: list[Any] | None = None) -> tuple[list[str], list[Any]]:
    """SQL conditions over a current ``sensors_history`` row (column prefix ``prefix``) and their args."""
    args = [] if args is None else args
    where: list[str] = []

    def arg(v: Any) -> str:
        args.append(v)
        return f"${len(args)}"

    if sensor_ids is not None:
        where.append(f"{prefix}sensor_id = ANY({arg(list(sensor_ids))}::text[])")
    if area is not None:
        where.append(f"{prefix}area = ANY({arg(list(area))}::text[])")
    if tags:
        where.append(f"{prefix}tags @> {arg(list(tags))}::text[]")
    if bbox is not None:
        min_lon, min_lat, max_lon, max_lat = bbox
        where.append(f"{prefix}lat BETWEEN {arg(float(min_lat))} AND {arg(float(max_lat))}")
        if min_lon <= max_lon:
            where.append(f"{prefix}lon BETWEEN {arg(float(min_lon))} AND {arg(float(max_lon))}")
        else:  # crosses the antimeridian
            where.append(f"({prefix}lon >= {arg(float(min_lon))} OR {prefix}lon <= {arg(float(max_lon))})")
    if status is not None:
        where.append(f"{prefix}status = ANY({arg([_word(s) for s in status])}::text[])")
    if data_classes is not None:
        where.append(f"{prefix}data_class = ANY({arg([_word(c) for c in data_classes])}::text[])")
    return where, args


def _word(v: Any) -> str:
    return v.value if hasattr(v, "value") else str(v)


async def save_sensor(db: Executor, sensor: SensorIn, valid_from: datetime | None = None, *,
                      create_only: bool = False, must_exist: bool = False) -> tuple[Sensor, str]:
    """Register or change ``sensor``; returns the current version and ``created``, ``updated`` or
    ``unchanged``.

    A change closes the current version at ``valid_from`` (default now) and opens the new one
    there; it must be later than the current version's start. Raises :class:`SensorExists` with
    ``create_only``, :class:`SensorNotFound` with ``must_exist``, :class:`InvalidChange` otherwise.
    """
    _check_time("valid_from", valid_from)
    try:
        return await _save(db, sensor, valid_from, create_only, must_exist)
    except asyncpg.UniqueViolationError as exc:  # another request registered or changed it meanwhile
        raise InvalidChange(f"sensor {sensor.id!r} was changed by another request at the same moment; "
                            "read it again and retry") from exc


def _check_time(name: str, t: datetime | None) -> None:
    if t is None:
        return
    if t.tzinfo is None:
        raise InvalidChange(f"{name} needs a UTC offset, e.g. 2026-05-01T00:00:00Z")
    if t > datetime.now(timezone.utc) + MAX_FUTURE:
        raise InvalidChange(f"{name} {t.isoformat()} is in the future; record a change when it happens")


async def _save(db: Executor, sensor: SensorIn, valid_from: datetime | None, create_only: bool,
                must_exist: bool) -> tuple[Sensor, str]:
    async with _transaction(db) as conn:
        current = await conn.fetchrow(_SELECT + " WHERE sensor_id = $1 AND valid_to IS NULL FOR UPDATE", sensor.id)
        values = _values(sensor)
        if current is None:
            if must_exist:
                raise SensorNotFound(f"sensor {sensor.id!r} is not registered; create it with PUT /sensors/{{id}} "
                                     "or urbanpulse registry import")
            last_end = await conn.fetchval("SELECT max(valid_to) FROM sensors_history WHERE sensor_id = $1",
                                           sensor.id)
            start = valid_from or (EARLIEST if last_end is None else datetime.now(timezone.utc))
            if last_end is not None and start < last_end:
                raise InvalidChange(f"sensor {sensor.id!r} was registered until {last_end.isoformat()}; a new "
                                    f"registration must start at or after that (valid_from)")
            await _insert(conn, sensor.id, start, values)
            return await _current(conn, sensor.id), "created"
        if create_only:
            raise SensorExists(f"sensor {sensor.id!r} is already registered; change it with PUT or PATCH")
        old = _sensor(current)
        if _same(old, sensor):
            return old, "unchanged"
        start = valid_from or datetime.now(timezone.utc)
        if start <= old.valid_from:
            raise InvalidChange(f"a change to {sensor.id!r} must take effect after its current version, which "
                                f"holds from {old.valid_from.isoformat()}; give a later valid_from")
        await conn.execute("UPDATE sensors_history SET valid_to = $2 WHERE sensor_id = $1 AND valid_to IS NULL",
                           sensor.id, start)
        await _insert(conn, sensor.id, start, values)
        return await _current(conn, sensor.id), "updated"


async def delete_sensor(db: Executor, sensor_id: str, at: datetime | None = None) -> Sensor:
    """Take a sensor out of the register from ``at`` (default now); its history stays, so its
    readings keep their positions. Returns the version that was closed."""
    _check_time("at", at)
    async with _transaction(db) as conn:
        row = await conn.fetchrow(_SELECT + " WHERE sensor_id = $1 AND valid_to IS NULL FOR UPDATE", sensor_id)
        if row is None:
            raise SensorNotFound(f"sensor {sensor_id!r} is not registered")
        old = _sensor(row)
        end = at or datetime.now(timezone.utc)
        if end <= old.valid_from:
            raise InvalidChange(f"the current version of {sensor_id!r} holds from {old.valid_from.isoformat()}; "
                                "it can only be ended after that")
        await conn.execute("UPDATE sensors_history SET valid_to = $2 WHERE sensor_id = $1 AND valid_to IS NULL",
                           sensor_id, end)
        return old


async def position_at(db: Executor, sensor_id: str, at: datetime) -> tuple[float, float, float | None] | None:
    """(lat, lon, elevation) of a sensor at time ``at``, from the version valid then; None when
    it was not registered at that time."""
    row = await db.fetchrow("SELECT lat, lon, elevation FROM sensor_position_at($1, $2)", sensor_id, at)
    return None if row is None else (row["lat"], row["lon"], row["elevation"])


async def unregistered_sensors(db: Executor) -> list[dict[str, Any]]:
    """Sensors that have sent readings (they have series) but are not in the register."""
    rows = await db.fetch("""
        SELECT s.sensor_id, array_agg(s.metric ORDER BY s.metric) AS metrics, min(s.created_at) AS first_seen
          FROM series s
         WHERE NOT EXISTS (SELECT 1 FROM sensors_history h WHERE h.sensor_id = s.sensor_id AND h.valid_to IS NULL)
         GROUP BY s.sensor_id ORDER BY s.sensor_id""")
    return [{"sensor_id": r["sensor_id"], "metrics": list(r["metrics"]), "first_seen": r["first_seen"]} for r in rows]


async def _insert(conn: asyncpg.Connection, sensor_id: str, start: datetime, values: list[Any]) -> None:
    cols = ", ".join(_FIELDS)
    params = ", ".join(f"${i + 3}" + ("::text::jsonb" if f == "metrics" else "") for i, f in enumerate(_FIELDS))
    await conn.execute(f"INSERT INTO sensors_history (sensor_id, valid_from, {cols}) VALUES ($1, $2, {params})",
                       sensor_id, start, *values)


async def _current(conn: asyncpg.Connection, sensor_id: str) -> Sensor:
    row = await conn.fetchrow(_SELECT + " WHERE sensor_id = $1 AND valid_to IS NULL", sensor_id)
    assert row is not None
    return _sensor(row)


class _transaction:
    """A transaction on a connection, or on one taken from a pool for its duration."""

    def __init__(self, db: Executor) -> None:
        self.db = db
        self._conn_cm: Any = None
        self._tx: Any = None

    async def __aenter__(self) -> asyncpg.Connection:
        if isinstance(self.db, asyncpg.Pool):
            self._conn_cm = self.db.acquire()
            conn = await self._conn_cm.__aenter__()
        else:
            conn = self.db
        self._tx = conn.transaction()
        await self._tx.__aenter__()
        return conn

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._tx.__aexit__(*exc)
        finally:
            if self._conn_cm is not None:
                await self._conn_cm.__aexit__(*exc)
