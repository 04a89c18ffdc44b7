"""Opaque keyset cursors: where the next page starts, bound to the query that made it.

The cursor holds the (series id, bucket start or reading time) of the first row of the next
page and, with gap filling, the series' last non-empty bucket before it (what ``previous`` and
``linear`` fill from). It is base64url JSON: not secret, but tied to the query's fingerprint,
so a cursor from another query is refused instead of silently skipping rows.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import orjson

from urbanpulse.query.errors import QueryError
from urbanpulse.query.fill import Prev


@dataclass(frozen=True, slots=True)
class Position:
    """First row of a page: series id and bucket start (or reading time), microseconds since the epoch."""

    series_id: int
    at_us: int
    prev: Prev | None = None


def encode_cursor(fingerprint: str, pos: Position) -> str:
    """The ``next_cursor`` string for a position."""
    prev = None if pos.prev is None else [pos.prev.bucket_us, list(pos.prev.values)]
    raw = orjson.dumps([fingerprint, pos.series_id, pos.at_us, prev])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(fingerprint: str, text: str) -> Position:
    """Position of a cursor made by :func:`encode_cursor` for the same query; QueryError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        fp, sid, at, prev = orjson.loads(raw)
        pos = Position(int(sid), int(at), None if prev is None else Prev(int(prev[0]), tuple(prev[1])))
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise QueryError("cursor is not valid; pass next_cursor of the previous page unchanged") from exc
    if fp != fingerprint:
        raise QueryError("cursor belongs to a different query; repeat the same parameters with it, or drop it "
                         "to start from the first page")
    return pos
