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

import zlib
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


def split(body: bytes, framing: str, format_name: str) -> Messages:
    """The messages of an (inflated) body; see the module doc for the rules."""
    if framing == NDJSON or (framing == TEXT and format_name == "influx_line"):
        payloads: list[bytes] = []
        positions: list[int] = []
        for n, line in enumerate(body.split(b"\n")):
            line = line.rstrip(b"\r")
            stripped = line.strip()
            if not stripped or (framing == TEXT and stripped.startswith(b"#")):
                continue
            payloads.append(line)
            positions.append(n)
        return Messages(payloads, positions)
    if framing == JSON and format_name == "json" and body.lstrip()[:1] == b"[":
        try:
            items = _RAW_ITEMS.decode(body)
        except (msgspec.DecodeError, RecursionError):
            items = None  # not valid JSON: one message, rejected by the format with its reason
        if items:
            return Messages([bytes(item) for item in items], list(range(len(items))))
    return Messages([body], [0])


def require_body(body: bytes) -> None:
    """400 for a request without a body."""
    if not body.strip():
        raise UnreadableBody("the request has no body; send readings (see POST /ingest in /docs)")


