"""Source ids registered at start-up: every source name gets a small id in ``sources``.

``readings.source`` is a 2-byte id. Migration 1 seeds the built-in names (mqtt 1, kafka 2,
http 3, replay 4); a plugin source (``sources:`` in the config) is added when the service starts,
with the next free id from a sequence (migration 60), so no core edit is needed for a new source.
Concurrent starts are safe: the name is unique and the insert does nothing when it exists.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

#: migration 60 (formats helper's range): ids for sources registered at start-up
SOURCE_IDS_SQL = """
CREATE SEQUENCE IF NOT EXISTS sources_id_seq AS smallint START 100 MAXVALUE 32767 OWNED BY sources.id;
ALTER TABLE sources ALTER COLUMN id SET DEFAULT nextval('sources_id_seq');
"""


async def register_sources(pool: asyncpg.Pool | asyncpg.Connection, names: Iterable[str]) -> dict[str, int]:
    """The id of every name, inserting the names not yet known. Returns name -> id."""
    wanted = sorted(set(names))
    if not wanted:
        return {}

    async def run(conn: asyncpg.Connection) -> dict[str, int]:
        await conn.execute("INSERT INTO sources (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING", wanted)
        rows = await conn.fetch("SELECT name, id FROM sources WHERE name = ANY($1::text[])", wanted)
        return {r["name"]: int(r["id"]) for r in rows}

    if isinstance(pool, asyncpg.Connection):
        return await run(pool)
    async with pool.acquire() as conn:
        return await run(conn)
