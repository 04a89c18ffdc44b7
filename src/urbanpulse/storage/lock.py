"""The schema lock: one session-level advisory lock that serialises every start-up change.

Migrations and the TimescaleDB policies both run under it, so services started together
change the schema and the background jobs one after the other, each seeing what the one
before it did. Session-level advisory locks are re-entrant, so code holding it may call
other code that takes it again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

MIGRATION_LOCK_ID = 0x75_72_62_61  # "urba"


@asynccontextmanager
async def migration_lock(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Hold the schema lock for the block (waits while another session holds it)."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
