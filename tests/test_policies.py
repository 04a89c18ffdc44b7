"""TimescaleDB policies: planned against what exists, applied under the schema lock.

The TimescaleDB SQL itself runs against the stand-in in tests/test_timescaledb_mode.py. Here:
* the plan, on generated job sets and configurations: applying it (with TimescaleDB's rules
  modelled in a few lines) leaves nothing more to do, keeps the job of every policy that
  stays (its id, so its history and ``alter_job`` tuning), and a second start changes nothing;
* on real PostgreSQL, the locking: services starting together on a fresh database all
  succeed, and the policy step waits for whoever holds the schema lock.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from urbanpulse.storage.lock import MIGRATION_LOCK_ID, migration_lock
from urbanpulse.storage.migrations import MIGRATIONS, migrate
from urbanpulse.storage.timescale import PolicyChange, PolicyJob, TablePolicy, apply_policies, plan_policy_changes

TABLES = ["readings", "rollup_1m", "rollup_1h"]
KINDS = ["compression", "retention"]
intervals = st.sampled_from([None, timedelta(days=1), timedelta(days=7), timedelta(days=30), timedelta(days=730)])


@st.composite
def job_sets(draw) -> list[PolicyJob]:
    jobs, next_id = [], 1000
    for table in TABLES:
        for kind in KINDS:
            for _ in range(draw(st.integers(0, 2))):  # 2: a duplicate someone added by hand
                jobs.append(PolicyJob(next_id, table, kind, draw(intervals.filter(lambda i: i is not None))))
                next_id += 1
    return jobs


policy_sets = st.lists(st.builds(TablePolicy, st.sampled_from(TABLES), intervals, intervals),
                       max_size=3, unique_by=lambda p: p.table)


def simulate(jobs: list[PolicyJob], changes: list[PolicyChange]) -> list[PolicyJob]:
    """TimescaleDB's effect of the plan: add makes a new job id, alter keeps the id, delete drops it."""
    out = {j.job_id: j for j in jobs}
    next_id = max(out, default=999) + 1
    for c in changes:
        if c.action == "add":
            out[next_id] = PolicyJob(next_id, c.table, c.kind, c.interval)
            next_id += 1
        elif c.action == "alter":
            out[c.job_id] = PolicyJob(c.job_id, c.table, c.kind, c.interval)
        elif c.action == "remove":
            del out[c.job_id]
    return list(out.values())


@given(job_sets(), policy_sets)
@settings(max_examples=300, deadline=None)
def test_plan_reaches_the_configuration_and_keeps_surviving_jobs(jobs, policies):
    after = simulate(jobs, plan_policy_changes(jobs, policies))

    # a second start has nothing to do
    again = plan_policy_changes(after, policies)
    assert all(c.action == "keep" for c in again), again
    # the jobs are exactly the configuration: one per wanted policy, none where None
    for p in policies:
        for kind in KINDS:
            have = [j for j in after if (j.table, j.kind) == (p.table, kind)]
            want = p.wanted(kind)
            assert [j.interval for j in have] == ([] if want is None else [want])
            # a policy that was there and is still wanted keeps its (oldest) job id
            before = sorted(j.job_id for j in jobs if (j.table, j.kind) == (p.table, kind))
            if want is not None and before:
                assert have[0].job_id == before[0]
    # tables the configuration does not name are left alone
    named = {p.table for p in policies}
    assert sorted((j.job_id, j.interval) for j in after if j.table not in named) == \
        sorted((j.job_id, j.interval) for j in jobs if j.table not in named)


@given(job_sets(), policy_sets)
@settings(max_examples=100, deadline=None)
def test_matching_jobs_are_kept_not_recreated(jobs, policies):
    configured = simulate(jobs, plan_policy_changes(jobs, policies))
    plan = plan_policy_changes(configured, policies)
    assert {c.job_id for c in plan} == {j.job_id for j in configured if j.table in {p.table for p in policies}}
    assert all(str(c).endswith("left alone") for c in plan)


def test_plan_alters_a_changed_interval_in_place():
    jobs = [PolicyJob(1000, "readings", "compression", timedelta(days=7))]
    plan = plan_policy_changes(jobs, [TablePolicy("readings", timedelta(days=2), timedelta(days=30))])
    assert [(c.action, c.kind, c.job_id, c.interval) for c in plan] == [
        ("alter", "compression", 1000, timedelta(days=2)), ("add", "retention", None, timedelta(days=30))]
    plan = plan_policy_changes(jobs, [TablePolicy("readings", None, None)])
    assert [(c.action, c.job_id) for c in plan] == [("remove", 1000)]


# -- real PostgreSQL: the lock ---------------------------------------------------------------------


POLICIES = [TablePolicy("readings", timedelta(days=7), timedelta(days=730))]


@pytest.mark.integration
async def test_services_starting_together_on_a_fresh_database_all_succeed(fresh_db):
    """Four starts at once (migrations + policy step, each on its own connection)."""
    conns = [await asyncpg.connect(fresh_db) for _ in range(4)]
    try:
        modes = await asyncio.gather(*(migrate(c, "postgres", POLICIES) for c in conns))
        assert modes == ["postgres"] * 4
        versions = [r[0] for r in await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == sorted(m.version for m in MIGRATIONS)
        held = await conns[0].fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            MIGRATION_LOCK_ID)
        assert held == 0  # in this database: other test sessions on the server use the same lock id
    finally:
        for c in conns:
            await c.close()


@pytest.mark.integration
async def test_policy_step_waits_for_the_schema_lock(fresh_db):
    holder, starter = await asyncpg.connect(fresh_db), await asyncpg.connect(fresh_db)
    try:
        starter_pid = starter.get_server_pid()
        async with migration_lock(holder):
            task = asyncio.create_task(apply_policies(starter, []))
            waiting = """SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1
                         AND pid = $2 AND NOT granted"""
            for _ in range(400):  # until the starter is seen queued on the lock (no timing assertion)
                if await holder.fetchval(waiting, MIGRATION_LOCK_ID, starter_pid):
                    break
                await asyncio.sleep(0.025)
            else:
                pytest.fail("apply_policies never waited for the schema lock")
            assert not task.done()
        assert await asyncio.wait_for(task, 30) == []
    finally:
        await holder.close()
        await starter.close()
