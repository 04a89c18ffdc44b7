"""TimescaleDB policies (compression, retention) made to match the configuration at start-up.

Kept apart from everything else so this small amount of TimescaleDB-only SQL can be checked
against a real TimescaleDB on its own.

Why it looks the way it does: services started together used to remove and re-add every
policy outside any lock, so one of them crashed (``columnstore policy already exists``,
``tuple concurrently deleted``) and every start recreated the jobs, losing their run history
and any ``alter_job`` tuning. Now the policies are changed under the schema lock
(:func:`~urbanpulse.storage.lock.migration_lock`), and a job is touched only when it differs
from the configuration: one that matches is left alone (same job id, schedule, history); one
whose interval differs gets the new interval through ``alter_job`` (same job id, schedule
tuning kept); only a policy the configuration no longer wants is removed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import asyncpg

from urbanpulse.storage.lock import migration_lock

log = logging.getLogger(__name__)

PolicyKind = Literal["compression", "retention"]

#: policy kind -> (job procedure, config key holding its interval, add function, remove function)
_KINDS: dict[str, tuple[str, str, str, str]] = {
    "compression": ("policy_compression", "compress_after", "add_compression_policy", "remove_compression_policy"),
    "retention": ("policy_retention", "drop_after", "add_retention_policy", "remove_retention_policy"),
}


@dataclass(frozen=True)
class TablePolicy:
    """What one hypertable should have: compress chunks older than ``compress_after``, drop
    chunks older than ``drop_after`` (None: no such policy)."""

    table: str
    compress_after: timedelta | None = None
    drop_after: timedelta | None = None

    def wanted(self, kind: str) -> timedelta | None:
        """The configured interval of one policy kind."""
        return self.compress_after if kind == "compression" else self.drop_after


@dataclass(frozen=True)
class PolicyJob:
    """One policy job as ``timescaledb_information.jobs`` shows it."""

    job_id: int
    table: str
    kind: str
    interval: timedelta | None  # the config's interval (None: not a time interval)


@dataclass(frozen=True)
class PolicyChange:
    """One step that makes the jobs match the configuration."""

    action: Literal["add", "alter", "remove", "keep"]
    table: str
    kind: str
    interval: timedelta | None
    job_id: int | None = None

    def __str__(self) -> str:
        what = f"{self.kind} policy on {self.table}"
        if self.action == "keep":
            return f"{what} already as configured ({_fmt(self.interval)}, job {self.job_id}); left alone"
        if self.action == "add":
            return f"{what}: added ({_fmt(self.interval)})"
        if self.action == "alter":
            return f"{what}: interval changed to {_fmt(self.interval)} (job {self.job_id} kept)"
        return f"{what}: removed (job {self.job_id}), the configuration has none"


def plan_policy_changes(jobs: Iterable[PolicyJob], policies: Iterable[TablePolicy]) -> list[PolicyChange]:
    """The steps from the jobs that exist to the configured policies; "keep" where they agree.

    Pure, so its rules are tested on generated inputs: after applying the plan, planning again
    gives only "keep" steps. Tables not in ``policies`` are not touched.
    """
    by_key: dict[tuple[str, str], list[PolicyJob]] = {}
    for job in jobs:
        by_key.setdefault((job.table, job.kind), []).append(job)
    out: list[PolicyChange] = []
    for p in policies:
        for kind in _KINDS:
            want = p.wanted(kind)
            have = sorted(by_key.get((p.table, kind), []), key=lambda j: j.job_id)
            if want is None:
                out += [PolicyChange("remove", p.table, kind, j.interval, j.job_id) for j in have]
                continue
            if not have:
                out.append(PolicyChange("add", p.table, kind, want))
                continue
            first, extra = have[0], have[1:]  # TimescaleDB allows one; more would be someone's by hand
            action = "keep" if first.interval == want else "alter"
            out.append(PolicyChange(action, p.table, kind, want, first.job_id))
            out += [PolicyChange("remove", p.table, kind, j.interval, j.job_id) for j in extra]
    return out


_JOBS_SQL = """
SELECT job_id, hypertable_name, proc_name, config
FROM timescaledb_information.jobs
WHERE hypertable_schema = current_schema() AND hypertable_name = ANY($1::text[])
  AND proc_name = ANY($2::text[])
"""


async def policy_jobs(conn: asyncpg.Connection, tables: Sequence[str]) -> list[PolicyJob]:
    """The compression and retention jobs on these hypertables."""
    if not tables:
        return []
    procs = {v[0]: k for k, v in _KINDS.items()}
    rows = await conn.fetch(_JOBS_SQL, list(tables), list(procs))
    jobs = []
    for r in rows:
        kind = procs[r["proc_name"]]
        cfg = r["config"]
        cfg = json.loads(cfg) if isinstance(cfg, str) else dict(cfg or {})
        raw = cfg.get(_KINDS[kind][1])
        interval = None
        if isinstance(raw, str):
            try:
                interval = await conn.fetchval("SELECT $1::text::interval", raw)
            except asyncpg.DataError:
                interval = None  # not an interval: "alter" will set the configured one
        jobs.append(PolicyJob(r["job_id"], r["hypertable_name"], kind, interval))
    return jobs


async def apply_policies(conn: asyncpg.Connection, policies: Sequence[TablePolicy]) -> list[PolicyChange]:
    """Make the hypertables' policies match ``policies``, under the schema lock; returns the steps.

    Safe to run from every service at every start: they take turns on the lock, and a policy
    already as configured is left alone (its job id, schedule, history and tuning survive).
    """
    async with migration_lock(conn):
        present = set(await conn.fetchval(
            "SELECT coalesce(array_agg(hypertable_name::text), '{}') FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = current_schema() AND hypertable_name = ANY($1::text[])",
            [p.table for p in policies])) if policies else set()
        for p in policies:
            if p.table not in present and (p.compress_after is not None or p.drop_after is not None):
                log.warning("timescaledb: %s is not a hypertable here; its policies are not applied", p.table)
        policies = [p for p in policies if p.table in present]
        changes = plan_policy_changes(await policy_jobs(conn, [p.table for p in policies]), policies)
        for c in changes:
            _, key, add_fn, _remove_fn = _KINDS[c.kind]
            if c.action == "add":
                # if_not_exists: never fail if a job appeared anyway (e.g. added by hand meanwhile)
                await conn.execute(f"SELECT {add_fn}($1::regclass, $2::interval, if_not_exists => true)",
                                   c.table, c.interval)
            elif c.action == "alter":
                await conn.execute(
                    "SELECT alter_job($1, config => jsonb_set(j.config, $2::text[], to_jsonb($3::interval::text))) "
                    "FROM timescaledb_information.jobs j WHERE j.job_id = $1", c.job_id, [key], c.interval)
            elif c.action == "remove":
                await conn.execute("SELECT delete_job($1)", c.job_id)
            (log.debug if c.action == "keep" else log.info)("timescaledb: %s", c)
        return changes


def _fmt(interval: timedelta | None) -> str:
    return "none" if interval is None else f"{interval.total_seconds() / 86400:g} days"


#: hypertables whose policies the configuration decides, and whether they are compressed
POLICY_TABLES: dict[str, bool] = {"readings": True, "rollup_1m": True, "rollup_1h": True, "rollup_1d": True}


def configured_policies(database: object) -> list[TablePolicy]:
    """The policies the ``database`` settings section (``DatabaseSettings``) asks for:
    ``timescaledb.compress_after`` on the compressed hypertables, ``retention.<table>`` on each."""
    compress_after = database.timescaledb.compress_after  # type: ignore[attr-defined]
    retention = database.retention  # type: ignore[attr-defined]
    return [TablePolicy(t, compress_after if compressed else None, getattr(retention, t))
            for t, compressed in POLICY_TABLES.items()]
