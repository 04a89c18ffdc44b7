"""Migrating into the server's ``postgres`` database is logged as a warning (newcomer43b, item 5).

Before: a database.dsn ending in /postgres (the maintenance database every server has) took the whole schema
without a word; newcomer43 did so by mistake. Now the migration logs a warning naming the fix (create a database
and name it in database.dsn) before it creates anything there; it is not refused (some hosted servers offer only
that database). The shared server's ``postgres`` database is never touched: the case that migrates into a
``postgres`` database runs on a private embedded PostgreSQL server of its own; the others on fresh databases of
the shared server 127.0.0.1:5432."""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg
import pytest

from urbanpulse.embedded_db import EmbeddedPostgres
from urbanpulse.storage.migrations import MIGRATIONS, migrate

WARNING = "the server's maintenance database"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and r.name == "urbanpulse.storage.migrations"]


async def _migrate_twice(dsn: str, caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str], str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        caplog.clear()
        await migrate(conn, prefer="postgres")
        first = _warnings(caplog)
        caplog.clear()
        await migrate(conn, prefer="postgres")  # up to date: nothing created, nothing said
        again = _warnings(caplog)
        name = await conn.fetchval("SELECT current_database()")
        applied = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        return first, again, name, applied
    finally:
        await conn.close()


@pytest.mark.integration
async def test_migrating_into_a_database_named_postgres_warns_once_and_still_migrates(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="urbanpulse.storage.migrations")
    with EmbeddedPostgres(tmp_path / "pg") as private:  # its own server: its postgres database is ours
        first, again, name, applied = await _migrate_twice(private.dsn_for("postgres"), caplog)
    assert name == "postgres" and applied == len(MIGRATIONS)
    assert len([w for w in first if WARNING in w]) == 1, first
    assert "createdb urbanpulse" in first[0] and "database.dsn" in first[0]
    assert not [w for w in again if WARNING in w]


@pytest.mark.integration
async def test_migrating_into_an_application_database_says_nothing_of_it(
        fresh_db: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="urbanpulse.storage.migrations")
    first, again, name, applied = await _migrate_twice(fresh_db, caplog)
    assert name != "postgres" and applied == len(MIGRATIONS)
    assert not [w for w in first + again if WARNING in w]
