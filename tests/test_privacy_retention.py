"""Retention and coarsening per data class on plain PostgreSQL (issue 15 items 1 and 5).

On generated contents (privacy_layouts.py: personal pseudonyms, restricted registry sensors, open
stations; readings, rollups, quarantine rows and alerts at many ages) one run at an injected
clock leaves exactly what each class's policy keeps, positions snapped to their age's grid; a run
interrupted after any batch (a simulated crash) and run again ends in the same state as an
uninterrupted run on a copy of the same contents; a second run changes nothing. Every run is a
row in privacy_audit and is counted on the service's metrics registry.
"""

from __future__ import annotations

import json

import asyncpg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

import services
from privacy_layouts import NOW, PRIVACY, TABLES, check_against_expected, dump, expected, fill, layouts
from urbanpulse.privacy.retention import ClassRetention
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.retention import Retention, RetentionPlan

pytestmark = pytest.mark.integration

NO_TABLE_RETENTION = RetentionPlan({t: None for t in ("readings", "rollup_1m", "rollup_1h", "rollup_1d",
                                                       "quarantine", "alert_events")}, delete_batch_rows=100)


class Crash(Exception):
    """What the fault hook raises: the job stops between two batches, as after a kill."""


@pytest.fixture(scope="module")
def two_databases():
    with services.migrated_database() as a, services.migrated_database() as b:
        yield a, b


async def _reset(conn: asyncpg.Connection) -> None:
    await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY")


def _job(pool: asyncpg.Pool, registry: CollectorRegistry, fault=None, batch_rows: int = 2) -> Retention:  # noqa: ANN001
    return Retention(pool, "postgres", NO_TABLE_RETENTION, None, registry, clock=lambda: NOW,
                     classes=ClassRetention(PRIVACY, batch_rows=batch_rows, fault=fault))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(layout=layouts(), crash_after=st.lists(st.integers(1, 8), min_size=1, max_size=3))
def test_per_class_retention_is_exact_idempotent_and_resumable(two_databases, layout, crash_after) -> None:  # noqa: ANN001
    services.run_sync(_scenario(two_databases, layout, crash_after))


async def _scenario(dbs: tuple[str, str], layout, crash_after: list[int]) -> None:  # noqa: ANN001
    conns = [await asyncpg.connect(d) for d in dbs]
    pools = [await asyncpg.create_pool(d, min_size=1, max_size=2) for d in dbs]
    try:
        for c, pool in zip(conns, pools):
            await _reset(c)
            await fill(c, layout, MonthlyPartitions(), pool)
        audit_before = [await c.fetchval("SELECT coalesce(max(id), 0) FROM privacy_audit") for c in conns]

        # A: one uninterrupted run
        registry = CollectorRegistry()
        report = await _job(pools[0], registry).run_once()
        state_a = await dump(conns[0])
        check_against_expected(state_a, expected(layout))
        for cls, rows in report.classes.rows.items():
            for table, n in rows.items():
                assert registry.get_sample_value("urbanpulse_retention_class_rows_total",
                                                 {"data_class": cls, "table": table}) == n

        # B: crashes after the k-th batch of each attempt, then a run that finishes
        outcomes = []
        for k in crash_after:
            seen = [0]

            def fault(cls: str, what: str, k: int = k, seen: list[int] = seen) -> None:
                seen[0] += 1
                if seen[0] == k:
                    raise Crash(f"after batch {k} ({cls} {what})")
            try:
                await _job(pools[1], CollectorRegistry(), fault).run_once()
                outcomes.append("done")
            except Crash:
                outcomes.append("failed")
        await _job(pools[1], CollectorRegistry()).run_once()
        assert await dump(conns[1]) == state_a
        event(f"crashed runs: {outcomes.count('failed')}")
        event("deleted and coarsened" if {w for r in report.classes.rows.values() for w in r} >= {
            "readings", "readings:coarsened"} else "not both deleted and coarsened")

        # idempotent: another run changes nothing and reports nothing
        again = await _job(pools[1], CollectorRegistry()).run_once()
        assert again.classes.rows == {} and await dump(conns[1]) == state_a

        # every run is audited, the crashed ones as failed
        audit = [json.loads(r["rows"]) | {"action": r["action"], "actor": r["actor"]} for r in await conns[1].fetch(
            "SELECT action, actor, rows FROM privacy_audit WHERE id > $1 ORDER BY id", audit_before[1])]
        assert [a["outcome"] for a in audit] == outcomes + ["done", "done"]
        assert {(a["action"], a["actor"]) for a in audit} == {("retention_run", "retention")}
        a_audit = json.loads(await conns[0].fetchval("SELECT rows FROM privacy_audit WHERE id > $1", audit_before[0]))
        assert a_audit["outcome"] == "done" and a_audit["by_class"] == report.classes.rows
    finally:
        for pool in pools:
            await pool.close()
        for c in conns:
            await c.close()
