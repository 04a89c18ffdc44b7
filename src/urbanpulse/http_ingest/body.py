"""An HTTP ingest request body as messages: content encoding undone, framing by Content-Type.

- ``Content-Encoding: gzip`` (or ``deflate``) is inflated with a limit on the inflated size
  (``http_ingest.max_decompressed_bytes``), checked as it inflates: a zip bomb costs at most that
  much memory before it is answered 413.
- ``application/json`` (and ``*+json``): one message; for the canonical format a top-level
  array is split into one message per item (the bytes as sent, no re-serialisation), so a
  rejection's ``index`` is the item's position and the per-message size limit applies per
  reading, not per request.
- ``application/x-ndjson`` / ``application/jsonl``: one message per line.
- ``text/plain`` with the line-protocol format: one message per line (blank and ``#`` lines skipped).
- ``application/cbor`` / ``application/senml+cbor``, ``text/csv``, other ``text/plain``: one message.

Each message keeps its position in the request (line or array index) as its offset: that is
the ``index`` of a rejection in the answer, and its provenance in quarantine.
"""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from collections.abc import Generator
from dataclasses import dataclass

import msgspec

from urbanpulse.errors import PayloadTooLarge, UnreadableBody, UnsupportedMediaType


#: framing of a body, by media type
JSON, NDJSON, CBOR, TEXT, CSV = "json", "ndjson", "cbor", "text", "csv"

MEDIA_TYPES: dict[str, str] = {
    "application/json": JSON,
    "application/senml+json": JSON,
    "application/x-ndjson": NDJSON,
    "application/ndjson": NDJSON,
    "application/jsonl": NDJSON,
    "application/x-jsonlines": NDJSON,
    "application/cbor": CBOR,
    "application/senml+cbor": CBOR,
    "text/plain": TEXT,
    "application/x-influx-line-protocol": TEXT,
    "text/csv": CSV,
}

#: the format POST /ingest (no format in the path) uses for each framing
DEFAULT_FORMAT: dict[str, str | None] = {JSON: None, NDJSON: None, CBOR: "senml_cbor", TEXT: "influx_line",
                                         CSV: "csv"}
#: media types with a format of their own on POST /ingest
MEDIA_TYPE_FORMAT: dict[str, str] = {"application/senml+json": "senml"}


def framing_of(content_type: str | None) -> tuple[str, str]:
    """(framing, media type) of a Content-Type header; 415 for media types HTTP ingest does not read."""
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    framing = MEDIA_TYPES.get(media)
    if framing is None and media.startswith("application/") and media.endswith("+json"):
        framing = JSON
    if framing is None:
        raise UnsupportedMediaType(
            f"Content-Type {media!r} is not read by HTTP ingest; send one of {', '.join(sorted(MEDIA_TYPES))}")
    return framing, media


def inflate(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """``body`` with its Content-Encoding undone, at most ``limit`` bytes (413 beyond, 400 if corrupt)."""
    encodings = [e.strip().lower() for e in (content_encoding or "").split(",") if e.strip()]
    for enc in reversed(encodings):  # applied in the order listed, so undone from the last
        if enc == "identity":
            continue
        if enc in ("gzip", "x-gzip"):
            wbits = 16 + zlib.MAX_WBITS
        elif enc == "deflate":
            wbits = zlib.MAX_WBITS
        else:
            raise UnsupportedMediaType(f"Content-Encoding {enc!r} is not supported; send gzip, deflate or identity")
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise UnreadableBody(f"the body is not valid {enc} ({exc}); send it compressed as its Content-Encoding "
                          f"says, or without Content-Encoding") from exc
        if len(out) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"the body inflates to more than {limit} bytes (http_ingest.max_decompressed_bytes); "
                                  f"send fewer readings per request")
        if not inflater.eof:
            raise UnreadableBody(f"the {enc} body is truncated; send the whole compressed stream")
        body = out
    return body


@dataclass(slots=True)
class Messages:
    """A body split into messages, each with its position in the request."""

    payloads: list[bytes]
    positions: list[int]


_RAW_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
#: the first byte of a line that is not blank (``bytes.strip``'s whitespace)
_CONTENT = re.compile(rb"[^ \t\r\n\x0b\x0c]")
_JSON_WS = " \t\r\n"


#: lines (or array items) :func:`split_async` walks per step, the event loop free between steps
#: (~0.1 s of work each: a body of 1 M one-line messages took 5.7 s in one go, ``ingest32``)
SPLIT_STEP = 20_000


def split(body: bytes, framing: str, format_name: str, max_messages: int | None = None) -> Messages:
    """The messages of an (inflated) body; see the module doc for the rules. More than
    ``max_messages`` (``http_ingest.max_messages``): :class:`PayloadTooLarge`, found after
    looking at no more than ``max_messages + 1`` of them, so a body of millions of tiny lines
    costs no more than one of the largest allowed (benchmarks/README.md ``robust31``)."""
    steps = _split_steps(body, framing, format_name, max_messages)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


async def split_async(body: bytes, framing: str, format_name: str, max_messages: int | None = None) -> Messages:
    """:func:`split`, yielding to the event loop every :data:`SPLIT_STEP` lines or items: the
    same messages, but other sources, timers and requests run while a large body is walked."""
    steps = _split_steps(body, framing, format_name, max_messages)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        await asyncio.sleep(0)


def _split_steps(body: bytes, framing: str, format_name: str, max_messages: int | None
                 ) -> Generator[None, None, Messages]:
    """:func:`split` as a generator that pauses (yields) every :data:`SPLIT_STEP` lines or items."""
    if framing == NDJSON or (framing == TEXT and format_name == "influx_line"):
        return (yield from _lines(body, framing == TEXT, max_messages))
    if framing == JSON and format_name == "json" and body.lstrip()[:1] == b"[":
        if (max_messages is not None and body.count(b",") >= max_messages
                and (yield from _more_items_than(body, max_messages))):
            raise _too_many(max_messages, "array items")
        try:
            items = _RAW_ITEMS.decode(body)
        except (msgspec.DecodeError, RecursionError):
            items = None  # not valid JSON: one message, rejected by the format with its reason
        if items:
            return Messages([bytes(item) for item in items], list(range(len(items))))
    return Messages([body], [0])


def _lines(body: bytes, comments: bool, max_messages: int | None) -> Generator[None, None, Messages]:
    """One message per line that is not blank (nor a ``#`` comment when ``comments``), each with
    its line number. Blank lines are skipped in C (a regex search for the next non-blank byte),
    not one Python iteration each; every other line counts towards ``max_messages``, comments
    included (they cost a Python iteration like a message). Pauses every :data:`SPLIT_STEP` lines."""
    payloads: list[bytes] = []
    positions: list[int] = []
    pos, lineno, seen, n = 0, 0, 0, len(body)
    pause = SPLIT_STEP
    while pos < n:
        m = _CONTENT.search(body, pos)
        if m is None:
            break
        first = m.start()
        nl = body.rfind(b"\n", pos, first)
        start = pos if nl < 0 else nl + 1
        lineno += body.count(b"\n", pos, start)
        end = body.find(b"\n", first)
        end = n if end < 0 else end
        seen += 1
        if max_messages is not None and seen > max_messages:
            raise _too_many(max_messages, "lines")
        if not (comments and body[first] == 0x23):  # "#"
            payloads.append(body[start:end].rstrip(b"\r"))
            positions.append(lineno)
        pos, lineno = end + 1, lineno + 1
        pause -= 1
        if not pause:
            pause = SPLIT_STEP
            yield
    return Messages(payloads, positions)


def _more_items_than(body: bytes, limit: int) -> Generator[None, None, bool]:
    """Whether a JSON array holds more than ``limit`` items, walking at most ``limit + 1`` of
    them (decoding the whole array first is what a hostile array of millions costs: ~8 s for 16 M
    items, measured). False when it is not a readable JSON array: the format says why. Pauses
    every :data:`SPLIT_STEP` items."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    decoder = json.JSONDecoder()
    i, n = text.index("[") + 1, len(text)
    count = 0
    try:
        while True:
            while i < n and text[i] in _JSON_WS:
                i += 1
            if i >= n or text[i] == "]":
                return False
            _, i = decoder.raw_decode(text, i)
            count += 1
            if count > limit:
                return True
            if not count % SPLIT_STEP:
                yield
            while i < n and text[i] in _JSON_WS:
                i += 1
            if i < n and text[i] == ",":
                i += 1
            else:
                return False
    except (ValueError, RecursionError):
        return False


def _too_many(limit: int, what: str) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request holds more than {limit} messages ({what}; http_ingest.max_messages): "
                           f"nothing of it was stored; send at most {limit} per request (split the file into "
                           f"several requests), or raise http_ingest.max_messages")


def require_body(body: bytes) -> None:
    """400 for a request without a body."""
    if not body.strip():
        raise UnreadableBody("the request has no body; send readings (see POST /ingest in /docs)")


