"""Messages that were being decoded when a source failed, kept in the database (migration 50).

A broker redelivers what was not acknowledged, so a message that crashes its source comes back
after every restart, of the source or of the whole process. ``source_suspects`` remembers each
message that was in the batch being decoded when its source failed, so the redelivery is
recognised (connectors/poison.py): a suspect is decoded alone, and one that crashed its source
while alone (``alone``) is quarantined as ``poison_message`` without being decoded again.

A message is identified by what its transport makes stable: a Kafka record by topic, partition
and offset (and its payload hash, so a recreated topic does not inherit old suspects); an MQTT
message, which has no stable id, by its topic and payload hash. The table depends on nothing else.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field

import asyncpg

log = logging.getLogger(__name__)

SUSPECTS_SQL = """
CREATE TABLE source_suspects (
    source          text NOT NULL,
    message_key     text NOT NULL,   -- topic/partition/offset (Kafka) or topic#sha256 (others)
    topic           text,
    kafka_partition int4,
    kafka_offset    int8,
    payload_sha256  bytea NOT NULL,
    crashes         int4 NOT NULL,   -- failures of the source while this message was being decoded
    alone           boolean NOT NULL, -- one of them with no other message in the batch: the poison
    error           text NOT NULL,   -- the last failure, as the supervisor saw it
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, message_key)
);
"""

_UPSERT_SQL = """
INSERT INTO source_suspects AS s (source, message_key, topic, kafka_partition, kafka_offset, payload_sha256,
                                  crashes, alone, error)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::int4[], $5::int8[], $6::bytea[], $7::int4[], $8::bool[],
                         $9::text[])
ON CONFLICT (source, message_key) DO UPDATE
    SET crashes = EXCLUDED.crashes, alone = EXCLUDED.alone, error = EXCLUDED.error,
        payload_sha256 = EXCLUDED.payload_sha256, last_seen = now()
"""


def payload_hash(payload: bytes) -> bytes:
    """The 32-byte SHA-256 of a payload: how a message without a stable id is recognised."""
    return hashlib.sha256(payload).digest()


def message_key(topic: str | None, partition: int | None, offset: int | None, sha: bytes | None) -> str:
    """The stable identity of one message: its Kafka coordinates, else its topic and payload hash."""
    if offset is not None:
        return f"{topic}/{partition}/{offset}"
    assert sha is not None
    return f"{topic or ''}#{sha.hex()}"


@dataclass(slots=True)
class Suspect:
    """One message that was in the batch being decoded when its source failed."""

    key: str
    topic: str | None
    partition: int | None
    offset: int | None
    sha256: bytes
    crashes: int
    alone: bool
    error: str
    #: wall-clock seconds of the last failure it was in (``last_seen``): it is forgotten
    #: ``forget_after_s`` later (connectors/poison.py keeps MQTT poison that long)
    seen_at: float = field(default_factory=time.time)

    @property
    def stable_id(self) -> bool:
        """Whether the transport names this message itself (a Kafka offset), so that an
        acknowledgement that took effect (a commit) means it never comes back. An MQTT message is
        named only by its topic and bytes, and nothing tells whether its PUBACK arrived."""
        return self.offset is not None


class SuspectStore:
    """Reads and writes ``source_suspects``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def load(self, forget_after_s: float) -> dict[str, dict[str, Suspect]]:
        """Every suspect not older than ``forget_after_s``, by source and key (older ones are deleted)."""
        async with self.pool.acquire() as conn:
            await conn.execute("DELETE FROM source_suspects WHERE last_seen < now() - make_interval(secs => $1)",
                               forget_after_s)
            rows = await conn.fetch("SELECT * FROM source_suspects")
        out: dict[str, dict[str, Suspect]] = {}
        for r in rows:
            out.setdefault(r["source"], {})[r["message_key"]] = Suspect(
                r["message_key"], r["topic"], r["kafka_partition"], r["kafka_offset"], bytes(r["payload_sha256"]),
                r["crashes"], r["alone"], r["error"], r["last_seen"].timestamp())
        return out

    async def save(self, source: str, suspects: list[Suspect]) -> None:
        """Insert or update ``suspects`` of ``source`` (one statement)."""
        async with self.pool.acquire() as conn:
            await conn.execute(_UPSERT_SQL, source, [s.key for s in suspects], [s.topic for s in suspects],
                               [s.partition for s in suspects], [s.offset for s in suspects],
                               [s.sha256 for s in suspects], [s.crashes for s in suspects],
                               [s.alone for s in suspects], [s.error for s in suspects])

    async def forget(self, source: str, keys: list[str]) -> None:
        """Delete the suspects ``keys`` of ``source`` (they were decoded alone without harm, or their
        quarantine is acknowledged)."""
        async with self.pool.acquire() as conn:
            await conn.execute("DELETE FROM source_suspects WHERE source = $1 AND message_key = ANY($2::text[])",
                               source, keys)
