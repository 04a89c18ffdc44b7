"""What the quarantine keys of migration 139 cost a quarantine flood (dup39).

Writes the same Kafka rejections (``--rows`` per statement, ``--payload`` bytes each, distinct
offsets) through the writer's quarantine statement into one fresh database, alternately under the
old unique key (topic, partition, offset, item) and under migration 139's (plus md5(payload));
then MQTT rejections without and with the digest index, and DUP redeliveries of them (the anti-join
on the digest index; all there already, so none is added).
Prints the median seconds per statement and the ratios against the old key, measured in the same run.

    PYTHONPATH=src:tests python benchmarks/dup39_quarantine_keys.py [--rows 10000] [--payload 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg

from services import PG_DSN, create_database, drop_database, migrate_schema
from urbanpulse.storage.quarantine_keys import INSERT_REDELIVERED_SQL, INSERT_SQL

OLD_KEY = """
DROP INDEX quarantine_kafka_message;
CREATE UNIQUE INDEX quarantine_kafka_message ON quarantine (topic, kafka_partition, kafka_offset, item)
    WHERE kafka_offset IS NOT NULL"""
NEW_KEY = """
DROP INDEX quarantine_kafka_message;
CREATE UNIQUE INDEX quarantine_kafka_message ON quarantine (topic, kafka_partition, kafka_offset, item, md5(payload))
    WHERE kafka_offset IS NOT NULL"""
DIGEST_INDEX = "CREATE INDEX quarantine_message_digest ON quarantine (md5(payload)) WHERE kafka_offset IS NULL"
OLD_SQL = INSERT_SQL.replace(", md5(payload))", ")")


def rows(n: int, size: int, base: int, kafka: bool) -> list[list]:
    payloads = [(b"garbage %d " % (base + i)).ljust(size, b"x") for i in range(n)]
    return [["kafka" if kafka else "mqtt"] * n, ["t"] * n, [0 if kafka else None] * n,
            [base + i if kafka else None for i in range(n)], [-1] * n, ["decode_error"] * n, ["d"] * n,
            payloads, [size] * n]


async def timed(conn: asyncpg.Connection, sql: str, args: list[list]) -> float:
    t = time.perf_counter()
    await conn.execute(sql, *args)
    return time.perf_counter() - t


async def main(n: int, size: int, rounds: int) -> None:
    name, dsn = create_database(PG_DSN, "dup39_bench")
    try:
        await migrate_schema(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            got: dict[str, list[float]] = {"old key": [], "new key": [], "mqtt no digest": [], "mqtt first": [],
                                           "mqtt DUP": []}
            base = 0
            for _ in range(rounds):
                for label, ddl, sql in (("old key", OLD_KEY, OLD_SQL), ("new key", NEW_KEY, INSERT_SQL)):
                    await conn.execute(ddl)
                    got[label].append(await timed(conn, sql, rows(n, size, base, True)))
                    base += n
                await conn.execute(NEW_KEY + ";\nDROP INDEX quarantine_message_digest")
                got["mqtt no digest"].append(await timed(conn, INSERT_SQL, rows(n, size, base, False)))
                base += n
                await conn.execute(DIGEST_INDEX)
                args = rows(n, size, base, False)
                base += n
                got["mqtt first"].append(await timed(conn, INSERT_SQL, args))
                got["mqtt DUP"].append(await timed(conn, INSERT_REDELIVERED_SQL, args))  # all there: none added
            total = await conn.fetchval("SELECT count(*) FROM quarantine")
        finally:
            await conn.close()
    finally:
        drop_database(name, PG_DSN)
    old = statistics.median(got["old key"])
    for label, xs in got.items():
        med = statistics.median(xs)
        print(f"{label:>10}: median {med * 1000:8.1f} ms per {n} rows  ({med / old:.2f} x the old key)")
    print(f"rows in quarantine at the end: {total} (expected {rounds * 4 * n})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--payload", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    asyncio.run(main(a.rows, a.payload, a.rounds))
