"""Numbered schema migrations, applied by ``urbanpulse migrate`` and on start-up.

Each migration runs once, in order, inside a transaction, under an advisory lock so two
services starting together do not race. On TimescaleDB the configured policies (compression,
retention) are applied under the same lock, right after the migrations (storage/timescale.py). Only the readings table differs by storage mode,
and the TimescaleDB part is the few statements in :data:`TIMESCALE_READINGS` so it can be
checked on its own against a real TimescaleDB.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Literal

import asyncpg

from urbanpulse.alerts.schema import ALERTS_SQL
from urbanpulse.auth.schema import API_KEYS_SQL
from urbanpulse.connectors.suspects import SUSPECTS_SQL
from urbanpulse.errors import MigrationError
from urbanpulse.privacy.schema import PRIVACY_AUDIT_SQL, SERIES_CLASS_SQL
from urbanpulse.registry.schema import QUARANTINE_SERIES_SQL, REGISTRY_SQL
from urbanpulse.storage.bucket_function import SERIES_BUCKETS_SQL
from urbanpulse.storage.lock import MIGRATION_LOCK_ID, migration_lock
from urbanpulse.storage.quarantine_keys import QUARANTINE_KEYS_SQL, QUARANTINE_REASON_KEY_SQL
from urbanpulse.storage.source_registry import SOURCE_IDS_SQL
from urbanpulse.storage.rollup_schema import (
    POSTGRES_ROLLUP_1D, POSTGRES_ROLLUP_COMPRESSION, POSTGRES_ROLLUPS, ROLLUP_PENDING, TIMESCALE_ROLLUP_1D,
    TIMESCALE_ROLLUP_COMPRESSION, TIMESCALE_ROLLUPS,
)
from urbanpulse.storage.timescale import PolicyChange, TablePolicy, apply_policies

log = logging.getLogger(__name__)

StorageMode = Literal["timescaledb", "postgres"]
_LOCK_ID = MIGRATION_LOCK_ID

_READINGS_COLUMNS = """
    series_id int4 NOT NULL,  -- series.id; no FK: a per-row FK check halves COPY speed
    ts        timestamptz NOT NULL,
    value     float8 NOT NULL,
    flags     int2 NOT NULL DEFAULT 0,
    source    int2 NOT NULL DEFAULT 0,
    lat       float8,
    lon       float8,
    PRIMARY KEY (series_id, ts)
"""

POSTGRES_READINGS = f"""
CREATE TABLE readings ({_READINGS_COLUMNS}) PARTITION BY RANGE (ts);
CREATE INDEX readings_ts_brin ON readings USING brin (ts);
"""

TIMESCALE_READINGS = f"""
CREATE TABLE readings ({_READINGS_COLUMNS});
SELECT create_hypertable('readings', 'ts', chunk_time_interval => INTERVAL '1 day');
ALTER TABLE readings SET (timescaledb.compress,
                          timescaledb.compress_segmentby = 'series_id',
                          timescaledb.compress_orderby = 'ts');
"""


@dataclass(frozen=True)
class Migration:
    """One schema step; ``sql`` may depend on the storage mode."""

    version: int
    description: str
    postgres_sql: str
    timescale_sql: str | None = None  # None: same as postgres_sql

    def sql(self, mode: StorageMode) -> str:
        return self.timescale_sql if mode == "timescaledb" and self.timescale_sql is not None else self.postgres_sql


MIGRATIONS: list[Migration] = [
    Migration(1, "series, sources and quarantine", """
CREATE TABLE series (
    id         serial PRIMARY KEY,
    sensor_id  text NOT NULL,
    metric     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (sensor_id, metric)
);
CREATE TABLE sources (id int2 PRIMARY KEY, name text NOT NULL UNIQUE);
INSERT INTO sources VALUES (0, 'unknown'), (1, 'mqtt'), (2, 'kafka'), (3, 'http'), (4, 'replay');
CREATE TABLE quarantine (
    id              bigserial PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    source          text NOT NULL,
    topic           text,
    kafka_partition int4,
    kafka_offset    int8,
    item            int4 NOT NULL DEFAULT -1,
    reason          text NOT NULL,
    detail          text,
    payload         bytea NOT NULL,
    payload_size    int4 NOT NULL
);
-- a redelivered Kafka message quarantines nothing twice
CREATE UNIQUE INDEX quarantine_kafka_message ON quarantine (topic, kafka_partition, kafka_offset, item)
    WHERE kafka_offset IS NOT NULL;
CREATE INDEX quarantine_reason_time ON quarantine (reason, received_at);
"""),
    Migration(2, "readings table", POSTGRES_READINGS, TIMESCALE_READINGS),
    Migration(3, "rollups (1 minute, 1 hour)", POSTGRES_ROLLUPS, TIMESCALE_ROLLUPS),
    Migration(4, "alerts, alert events, maintenance windows", ALERTS_SQL),
    Migration(10, "sensor registry with validity periods", REGISTRY_SQL),
    Migration(20, "API keys (hashed) with roles", API_KEYS_SQL),
    Migration(11, "quarantine_series(): the series a quarantined payload names", QUARANTINE_SERIES_SQL),
    Migration(40, "daily rollups, per-series rollup levels", POSTGRES_ROLLUP_1D, TIMESCALE_ROLLUP_1D),
    Migration(41, "rollups compressed like readings", POSTGRES_ROLLUP_COMPRESSION, TIMESCALE_ROLLUP_COMPRESSION),
    Migration(42, "deferred rollups: per-writer marks of buffered minutes", ROLLUP_PENDING),
    Migration(25, "series_buckets(): level-aware buckets for SQL clients (Grafana)", SERIES_BUCKETS_SQL),
    Migration(50, "messages that crashed a source (poison-message handling)", SUSPECTS_SQL),
    Migration(60, "source ids assigned at start-up (plugin sources)", SOURCE_IDS_SQL),
    Migration(90, "privacy audit log (append-only): subject exports and erasures", PRIVACY_AUDIT_SQL),
    Migration(91, "data class of each series (series.data_class, series_classes view)", SERIES_CLASS_SQL),
    Migration(139, "quarantine keys: a Kafka row's payload digest, an index for MQTT redeliveries",
              QUARANTINE_KEYS_SQL),
    Migration(140, "quarantine keys: the reason too (every reason of a Kafka record's item is a row)",
              QUARANTINE_REASON_KEY_SQL),
]


async def timescaledb_available(conn: asyncpg.Connection) -> bool:
    """Whether the server can load the timescaledb extension."""
    return bool(await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"))


async def current_mode(conn: asyncpg.Connection) -> StorageMode | None:
    """The storage mode the schema was created in, or None before the first migration."""
    exists = await conn.fetchval("SELECT to_regclass('urbanpulse_meta') IS NOT NULL")
    if not exists:
        return None
    return await conn.fetchval("SELECT value FROM urbanpulse_meta WHERE key = 'storage_mode'")


async def migrate(conn: asyncpg.Connection, prefer: str = "auto",
                  policies: Sequence[TablePolicy] | None = None) -> StorageMode:
    """Bring the schema up to date and return the storage mode in use.

    ``prefer`` is ``auto`` (TimescaleDB when the extension is available), ``timescaledb``
    (fail if it is not) or ``postgres``. The mode is fixed when the readings table is created.
    ``policies``: on TimescaleDB, the hypertable policies to apply under the same lock (None:
    leave the policies as they are).
    """
    async with migration_lock(conn):
        await conn.execute("""
            CREATE TABLE IF NOT EXISTS urbanpulse_meta (key text PRIMARY KEY, value text NOT NULL);
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version int PRIMARY KEY, description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now());
        """)
        mode = await current_mode(conn)
        if mode is None:
            mode = await _choose_mode(conn, prefer)
            await conn.execute("INSERT INTO urbanpulse_meta VALUES ('storage_mode', $1)", mode)
        elif prefer not in ("auto", mode):
            log.warning("storage_mode=%s requested but the schema was created as %s; keeping %s", prefer, mode, mode)
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        if any(m.version not in done for m in MIGRATIONS):
            await warn_if_maintenance_database(conn)
        for m in MIGRATIONS:
            if m.version in done:
                continue
            log.info("applying migration %04d: %s (%s)", m.version, m.description, mode)
            try:
                async with conn.transaction():
                    await conn.execute(m.sql(mode))
                    await conn.execute("INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
                                       m.version, m.description)
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"migration {m.version:04d} ({m.description}) failed: {exc}") from exc
        if mode == "timescaledb" and policies is not None:
            await _apply_policies(conn, policies)
        return mode  # type: ignore[return-value]


#: the database every PostgreSQL server creates for tools and administrators to connect to
MAINTENANCE_DATABASE = "postgres"


async def warn_if_maintenance_database(conn: asyncpg.Connection) -> None:
    """Log a warning before migrations create or change tables in the server's ``postgres`` database: a
    database.dsn ending in /postgres is usually a slip (the schema then sits among the administrators'
    things, and dropping it means dropping table by table). Not refused: some hosted servers offer only it."""
    name = await conn.fetchval("SELECT current_database()")
    if name == MAINTENANCE_DATABASE:
        log.warning("migrating the urbanpulse schema into the database %r, the server's maintenance database; "
                    "if that was not meant, create one (createdb urbanpulse, or CREATE DATABASE urbanpulse) and "
                    "name it at the end of database.dsn (.../urbanpulse); a hosted server that offers only %r "
                    "can keep it", name, name)


async def _apply_policies(conn: asyncpg.Connection, policies: Sequence[TablePolicy]) -> list[PolicyChange]:
    try:
        return await apply_policies(conn, policies)
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"cannot apply the TimescaleDB policies ({exc}); check database.timescaledb and "
                             "database.retention in the configuration") from exc


async def _choose_mode(conn: asyncpg.Connection, prefer: str) -> StorageMode:
    if prefer == "postgres":
        return "postgres"
    available = await timescaledb_available(conn)
    if prefer == "timescaledb" and not available:
        raise MigrationError("storage_mode=timescaledb but the timescaledb extension is not installed on this "
                             "server; install it or set database.storage_mode to auto or postgres")
    if available:
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except asyncpg.PostgresError as exc:
            # typically: the package is installed but not in shared_preload_libraries
            if prefer == "timescaledb":
                raise MigrationError(f"cannot enable the timescaledb extension ({exc}); add timescaledb to "
                                     "shared_preload_libraries and restart PostgreSQL") from exc
            log.warning("timescaledb is installed but cannot be enabled (%s); using plain PostgreSQL", exc)
            return "postgres"
        return "timescaledb"
    return "postgres"
