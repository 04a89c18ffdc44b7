"""The embedded PostgreSQL starts from the wheel alone, serves asyncpg, and keeps its data."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest

from urbanpulse.embedded_db import EmbeddedDatabaseError, EmbeddedPostgres


async def _query(dsn: str, *statements: str) -> list:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        results = []
        for sql in statements:
            results.append(await conn.fetch(sql))
        return results
    finally:
        await conn.close()


def _run(dsn: str, *statements: str) -> list:
    return asyncio.run(_query(dsn, *statements))


def test_start_connect_stop_restart_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "pg"
    pg = EmbeddedPostgres(data_dir)
    dsn = pg.start()
    try:
        assert dsn == pg.dsn
        assert dsn.startswith("postgresql://")
        assert pg.initialised_now
        (one,), (dbname,), _, _ = _run(
            dsn,
            "select 1 as one",
            "select current_database() as db",
            "create table kept (id int primary key, note text)",
            "insert into kept values (1, 'survives a restart')",
        )
        assert one["one"] == 1
        assert dbname["db"] == "urbanpulse"
        assert pg.start() == dsn  # idempotent
    finally:
        pg.stop()
    assert not pg.running
    assert not (data_dir / "postmaster.pid").exists(), "server should be stopped"
    pg.stop()  # second stop is harmless

    with EmbeddedPostgres(data_dir) as again:
        assert not again.initialised_now
        assert again.startup_seconds is not None and again.startup_seconds < 30
        (rows,) = _run(again.dsn, "select id, note from kept")
        assert [tuple(r) for r in rows] == [(1, "survives a restart")]
        (admin,) = _run(again.dsn_for("postgres"), "select current_database() as db")
        assert admin[0]["db"] == "postgres"
    assert not (data_dir / "postmaster.pid").exists()


def test_stale_pidfile_from_a_crash_does_not_block_start(tmp_path: Path) -> None:
    """After a crash the PID in postmaster.pid may belong to an unrelated process."""
    data_dir = tmp_path / "pg"
    with EmbeddedPostgres(data_dir):
        pass
    lines = ["0"] * 8
    lines[0] = str(os.getpid())  # alive, but it is pytest, not postgres
    lines[1] = str(data_dir)
    (data_dir / "postmaster.pid").write_text("\n".join(lines) + "\n")
    (data_dir / ".handle_pids.json").write_text("[999999999]")  # a dead holder
    with EmbeddedPostgres(data_dir) as pg:
        ((row,),) = _run(pg.dsn, "select 1 as one")
        assert row["one"] == 1
    assert not (data_dir / "postmaster.pid").exists(), "dead holder must not keep it running"


def test_dsn_before_start_explains_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedDatabaseError, match="call start"):
        EmbeddedPostgres(tmp_path / "pg").dsn


def test_refuses_a_non_empty_foreign_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "not-pg"
    data_dir.mkdir()
    (data_dir / "notes.txt").write_text("important")
    with pytest.raises(EmbeddedDatabaseError, match="empty or non-existent directory"):
        EmbeddedPostgres(data_dir).start()
    assert (data_dir / "notes.txt").read_text() == "important"


def test_rejects_odd_database_names(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedDatabaseError, match="identifier"):
        EmbeddedPostgres(tmp_path / "pg", database='x"; drop')
