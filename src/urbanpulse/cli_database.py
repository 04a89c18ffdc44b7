"""The database a one-off command (``keys``, ``registry``, ``subject``) works on.

Each such command wants the same thing: one connection to the configured database (an embedded
PostgreSQL started for it when no ``database.dsn`` is set), the schema brought up to date first so
a command run before the service ever started still finds its tables, and everything stopped
again afterwards, also when the connection or the command fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg

from urbanpulse.config import Settings
from urbanpulse.start_ahead import connect_with_retry, resolve_dsn
from urbanpulse.storage.migrations import migrate
from urbanpulse.storage.timescale import configured_policies


@contextlib.asynccontextmanager
async def command_connection(settings: Settings, *, apply_policies: bool = False) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the configured database with the schema up to date; closed (and an embedded
    server stopped) on exit. ``apply_policies``: on TimescaleDB, also bring the configured
    hypertable policies up to date, as ``urbanpulse migrate`` and the service do."""
    dsn, embedded = await asyncio.to_thread(resolve_dsn, settings)
    try:
        conn = await connect_with_retry(dsn, settings.database.connect_timeout_s)
        try:
            policies = configured_policies(settings.database) if apply_policies else None
            await migrate(conn, settings.database.storage_mode, policies)
            yield conn
        finally:
            await conn.close()
    finally:
        if embedded is not None:
            embedded.stop()  # type: ignore[attr-defined]
