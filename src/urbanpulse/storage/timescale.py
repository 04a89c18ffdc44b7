"""TimescaleDB policies (compression, retention) applied from the configuration at start-up.

Kept apart from everything else so this small amount of TimescaleDB-only SQL can be checked
against a real TimescaleDB on its own.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg


async def apply_policies(conn: asyncpg.Connection, compress_after: timedelta | None,
                         retain_for: timedelta | None) -> None:
    """Make the readings hypertable's policies match the configuration (idempotent)."""
    await conn.execute("SELECT remove_compression_policy('readings', if_exists => true)")
    if compress_after is not None:
        await conn.execute("SELECT add_compression_policy('readings', $1::interval)", compress_after)
    await conn.execute("SELECT remove_retention_policy('readings', if_exists => true)")
    if retain_for is not None:
        await conn.execute("SELECT add_retention_policy('readings', $1::interval)", retain_for)
