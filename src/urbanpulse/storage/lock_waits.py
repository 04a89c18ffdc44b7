"""Who waits inside PostgreSQL for a transaction of ours, and on what.

Batches commit in the order they were formed (pipeline/ack_ledger.py), so a later batch that
has written its rows waits, transaction open, for the earlier ones. If an earlier batch needs
something that open transaction holds, the two would wait for each other until the ledger's
time limit; the ledger asks :func:`blocked_by_us` and, if anyone is blocked, commits the later
batch first. What the blocked backend waits for tells the operator why, and the two usual
causes mean very different things:

* a **row** (lock type ``transactionid``): the earlier batch inserts a key the later one
  inserted first, i.e. the same readings (or quarantined messages) twice, typically a
  redelivery after a restart or a rebalance;
* a **table** (lock type ``relation``): on TimescaleDB the later batch created a new chunk
  (its first reading of a new day), which takes a lock on the hypertable held until commit,
  and the earlier batch writes into that day too. No reading is duplicated.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import asyncpg

# the lock each backend blocked by ``$1`` is waiting for (one row per ungranted lock)
_BLOCKED_SQL = """
SELECT l.locktype, l.mode, CASE WHEN l.relation IS NULL THEN NULL ELSE l.relation::regclass::text END AS relation
FROM pg_stat_activity a
JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
WHERE $1 = ANY(pg_blocking_pids(a.pid))
"""


class WaitKind(enum.Enum):
    """Why another transaction waits for ours (see the module doc)."""

    SAME_ROWS = "same_rows"
    TABLE_LOCK = "table_lock"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class BlockedWaiter:
    """One lock another backend waits for and this transaction holds."""

    kind: WaitKind
    locktype: str
    mode: str
    relation: str | None

    def describe(self) -> str:
        """What the wait means, for the log line of whoever resolves it."""
        if self.kind is WaitKind.SAME_ROWS:
            return "it holds rows an earlier batch inserts too (the same readings twice, e.g. a redelivery)"
        if self.kind is WaitKind.TABLE_LOCK:
            return (f"it holds a {self.mode} on {self.relation or 'a table'} that an earlier batch waits for "
                    f"(on TimescaleDB: it created a new chunk the earlier batch writes into; no reading is "
                    f"duplicated)")
        return f"it holds a {self.mode} ({self.locktype}) an earlier batch waits for"


def _kind(locktype: str) -> WaitKind:
    if locktype == "transactionid":
        return WaitKind.SAME_ROWS
    if locktype == "relation":
        return WaitKind.TABLE_LOCK
    return WaitKind.OTHER


async def blocked_by_us(conn: asyncpg.Connection) -> BlockedWaiter | None:
    """The lock some other backend waits for and ``conn``'s transaction holds, or None when
    nobody waits for it. A table lock is reported before a row lock: it is the rarer cause and
    a chunk being created blocks every insert into that day, duplicates or not."""
    rows = await conn.fetch(_BLOCKED_SQL, conn.get_server_pid())
    if not rows:
        return None
    waits = sorted((BlockedWaiter(_kind(r["locktype"]), r["locktype"], r["mode"], r["relation"]) for r in rows),
                   key=lambda w: (w.kind is not WaitKind.TABLE_LOCK, w.kind is not WaitKind.SAME_ROWS))
    return waits[0]
