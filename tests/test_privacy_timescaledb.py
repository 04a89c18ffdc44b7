"""Retention and coarsening per data class on TimescaleDB (the PGlite + timescaledb stand-in of
tests/test_timescaledb_mode.py; one connection, no COPY).

The same generated contents as tests/test_privacy_retention.py, on hypertables with compressed
chunks: one run at an injected clock leaves what each class keeps (rows deleted and positions
coarsened inside compressed chunks too); runs interrupted after a batch and run again end in the
state the policy defines; the table-wide period drops whole chunks (drop_chunks), and every run,
the crashed ones too, is in privacy_audit.
"""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

import services
from privacy_layouts import NOW, PRIVACY, TABLES, check_against_expected, dump, expected, fill, layouts
from urbanpulse.privacy.retention import ClassRetention
from urbanpulse.storage.migrations import migrate
from urbanpulse.storage.retention import Retention, RetentionPlan

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NONE = {t: None for t in ("readings", "rollup_1m", "rollup_1h", "rollup_1d", "quarantine", "alert_events")}


class Crash(Exception):
    """Raised by the fault hook: the job stops between two batches."""


class OneConnection:
    """The pool interface Retention uses, over the stand-in's single connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @contextlib.asynccontextmanager
    async def acquire(self):  # noqa: ANN201
        yield self.conn


@pytest.fixture(scope="module")
async def conn(tmp_path_factory):
    async with services.timescale_connection(tmp_path_factory.mktemp("timescale-privacy")) as c:
        assert await migrate(c, "auto") == "timescaledb"
        yield c


async def _prepare(conn: asyncpg.Connection, layout) -> None:  # noqa: ANN001
    await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY")
    await fill(conn, layout)
    # every chunk older than a week compressed, as the compression policy leaves them
    for table in ("readings", "rollup_1m", "rollup_1h", "rollup_1d"):
        await conn.execute(f"SELECT compress_chunk(c, if_not_compressed => true) "
                           f"FROM show_chunks('{table}', older_than => $1::timestamptz) c", NOW - timedelta(days=7))


def _job(conn: asyncpg.Connection, plan: dict | None = None, fault=None) -> Retention:  # noqa: ANN001
    return Retention(OneConnection(conn), "timescaledb", RetentionPlan(plan or NONE, 100), None, CollectorRegistry(),  # type: ignore[arg-type]
                     clock=lambda: NOW, classes=ClassRetention(PRIVACY, batch_rows=3, fault=fault))


async def test_compressed_chunks_exist_in_the_layout(conn):
    """The stand-in compresses chunks (so the runs below delete and update inside compressed ones)."""
    from privacy_layouts import Layout

    await _prepare(conn, Layout(["personal"], [(0, 60 * 24 * 20, 52.5200123, 13.4049456)], [], [], []))
    assert await conn.fetchval("SELECT count(*) FROM timescaledb_information.chunks "
                               "WHERE hypertable_name = 'readings' AND is_compressed") == 1
    await _job(conn).run_once()
    assert [tuple(r) for r in await conn.fetch("SELECT lat, lon FROM readings")] != [(52.5200123, 13.4049456)]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(layout=layouts(), crash_after=st.integers(1, 6))
async def test_per_class_retention_on_hypertables_is_exact_and_resumable(conn, layout, crash_after) -> None:  # noqa: ANN001
    # async (pytest-asyncio runs each hypothesis example on the session loop that owns `conn`); a sync
    # test calling asyncio.get_event_loop() failed in the full suite once an earlier test left no loop set
    await _scenario(conn, layout, crash_after)


async def _scenario(conn: asyncpg.Connection, layout, crash_after: int) -> None:  # noqa: ANN001
    await _prepare(conn, layout)
    before = await conn.fetchval("SELECT coalesce(max(id), 0) FROM privacy_audit")
    seen = [0]

    def fault(cls: str, what: str) -> None:
        seen[0] += 1
        if seen[0] == crash_after:
            raise Crash(f"after batch {crash_after}")
    outcomes = []
    try:
        await _job(conn, fault=fault).run_once()
        outcomes.append("done")
    except Crash:
        outcomes.append("failed")
    await _job(conn).run_once()
    state = await dump(conn)
    check_against_expected(state, expected(layout))
    again = await _job(conn).run_once()
    assert again.classes.rows == {} and await dump(conn) == state
    audit = [json.loads(r[0])["outcome"] for r in await conn.fetch(
        "SELECT rows FROM privacy_audit WHERE id > $1 ORDER BY id", before)]
    assert audit == outcomes + ["done", "done"]


async def test_table_wide_retention_drops_whole_chunks_and_audits_them(conn):
    from privacy_layouts import Layout

    ages = [60 * 24 * d for d in (1, 2, 55, 56, 80)]  # minutes
    layout = Layout(["open"], [(0, a, 48.1, 11.6) for a in ages], [], [], [])
    await _prepare(conn, layout)
    chunks_before = await conn.fetchval("SELECT count(*) FROM show_chunks('readings')")
    report = await _job(conn, {**NONE, "readings": timedelta(days=50)}).run_once()
    assert len(report.partitions["readings"]) == 3 and chunks_before - 3 == await conn.fetchval(
        "SELECT count(*) FROM show_chunks('readings')")
    assert sorted(r[0] for r in await conn.fetch("SELECT ts FROM readings")) == sorted(
        NOW - timedelta(minutes=a) for a in ages[:2])
    row = json.loads(await conn.fetchval("SELECT rows FROM privacy_audit ORDER BY id DESC LIMIT 1"))
    assert row["partitions_dropped"] == {"readings": 3} and row["outcome"] == "done"
    again = await _job(conn, {**NONE, "readings": timedelta(days=50)}).run_once()
    assert again.partitions["readings"] == []
