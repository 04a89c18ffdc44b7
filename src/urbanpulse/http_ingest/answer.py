"""The 200 of ``POST /ingest``: its JSON built in chunks, the event loop free between them.

The answer lists every rejected reading (position, reason, detail): a request of 1 M bad lines
(allowed once ``http_ingest.max_messages`` / ``max_readings`` are raised) has 1 M of them. Built
as dicts and handed to FastAPI, the answer was validated into 1 M pydantic models and serialised
in one go on the event loop: ~6-8 s during which no other source, timer or request ran
(benchmarks/README.md ``robust31``, ``ingest32``). Here the same document (the ``IngestResult``
schema of the route, field for field, ``item`` and ``ignored`` null when absent) is encoded with
orjson :data:`ANSWER_CHUNK` rejections at a time, yielding between chunks, and sent as bytes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import orjson

from urbanpulse.model import Rejection

#: rejections encoded per step (a few ms each); the loop runs other work between steps
ANSWER_CHUNK = 5000


def describe_rejection(r: Rejection) -> dict[str, Any]:
    """A rejection as the answer lists it: the reading's position in the request, why, and details."""
    return {"index": r.offset if r.offset is not None else 0, "item": r.item if r.item >= 0 else None,
            "reason": getattr(r.reason, "value", r.reason), "detail": r.detail}


def _dumps(items: list[dict[str, Any]]) -> bytes:
    """orjson; the standard library (ASCII, surrogates escaped) for text orjson refuses (a lone
    surrogate in a detail), so one odd rejection cannot turn a durable request's answer into a 500."""
    try:
        return orjson.dumps(items, option=orjson.OPT_SERIALIZE_NUMPY)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(items, separators=(",", ":"), default=int).encode()


async def encode_answer(format_name: str, messages: int, stored: int, rejections: Sequence[Rejection],
                        ignored: str | None = None) -> bytes:
    """The answer's JSON bytes (``IngestResult``), the rejections encoded chunk by chunk."""
    head = orjson.dumps({"format": format_name, "messages": messages, "stored": stored})[:-1]
    parts = [head, b',"rejected":[']
    for start in range(0, len(rejections), ANSWER_CHUNK):
        if start:
            parts.append(b",")
            await asyncio.sleep(0)  # the other sources and requests run between chunks
        parts.append(_dumps([describe_rejection(r) for r in rejections[start:start + ANSWER_CHUNK]])[1:-1])
    parts.append(b'],"ignored":' + orjson.dumps(ignored) + b"}")
    return b"".join(parts)
