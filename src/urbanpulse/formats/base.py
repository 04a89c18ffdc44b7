"""The format plugin contract: raw message bytes in, reading columns and rejections out."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from urbanpulse.model import ReadingColumns, Rejection


@dataclass(slots=True)
class MessageBatch:
    """Raw messages from one source pull, with the provenance quarantine needs.

    ``topic_fields`` holds, per message, fields a topic template filled in (for example
    ``sensor_id`` and ``metric`` from ``city/{district}/{sensor_id}/{metric}``), or None.
    ``lanes`` holds, per message, a small dense id of the ordered sub-stream it came from (a
    Kafka topic-partition): lateness is judged per lane, because only a lane is ordered.
    ``caught_up`` says the source has nothing more waiting right now (see the field).
    """

    source: str
    payloads: list[bytes]
    topics: list[str] | None = None
    partitions: list[int] | None = None
    offsets: list[int] | None = None
    topic_fields: list[dict[str, str] | None] | None = None
    received_ns: int = 0
    lanes: np.ndarray | None = None  # int16 per message
    #: the source had nothing more buffered when it handed these over (a Kafka fetch short of
    #: max_records, an MQTT buffer emptied): the pipeline may write them now rather than wait for
    #: more (pipeline/batcher.py), since waiting would only add latency
    caught_up: bool = False
    #: messages known to be waiting at the source after these (Kafka: each partition's high
    #: watermark minus the next offset, as of its latest fetch, summed over the partitions read so
    #: far); 0 when not known. The pipeline
    #: writes bigger batches while a source is far behind (``ingest.catch_up_batch_readings``)
    behind: int = 0
    #: the source says these messages may have been received before (an MQTT PUBLISH redelivered
    #: with the DUP flag): their rejections are quarantined only if not already there
    redelivered: bool = False

    def provenance(self, i: int) -> tuple[str | None, int | None, int | None]:
        """Topic, partition and offset of message ``i`` (None where the source has none)."""
        return (
            self.topics[i] if self.topics is not None else None,
            self.partitions[i] if self.partitions is not None else None,
            self.offsets[i] if self.offsets is not None else None,
        )


@dataclass(slots=True)
class DecodeLimits:
    """Limits that keep a hostile payload from costing more than it is worth."""

    max_payload_bytes: int = 256 * 1024
    max_json_depth: int = 16


@dataclass(slots=True)
class Decoded:
    """What a format returns: readings that parsed, and messages/items that did not."""

    columns: ReadingColumns
    rejections: list[Rejection] = field(default_factory=list)
    #: the parsed object of each reading, kept only to quarantine it later with its raw form
    raw_items: list[object] = field(default_factory=list)


def describe_exception(exc: BaseException, limit: int = 300) -> str:
    """``Type: text`` of an exception, for a quarantine row's ``detail``.

    Bounded, and always encodable as UTF-8: the text of an exception raised by hostile input
    often quotes that input (a lone surrogate, say), and a detail PostgreSQL cannot store would
    turn one bad message into a batch that can never be written.
    """
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises still gets quarantined
        text = type(exc).__name__
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


@runtime_checkable
class Format(Protocol):
    """A payload format: registered under ``urbanpulse.formats`` by name."""

    name: str

    def decode(self, batch: MessageBatch) -> Decoded:
        """Decode every message; never raise for bad input, return rejections instead.

        Should a format raise anyway, the pipeline decodes that batch again message by message
        and quarantines just the message that raises (reason ``decode_error``): a format bug
        costs one message, never a source.
        """
        ...


def depth_exceeds(obj: object, limit: int) -> bool:
    """True if JSON nesting goes deeper than ``limit``; iterative, so hostile input cannot
    exhaust the stack (every JSON-based format checks its parsed message with it)."""
    stack: list[tuple[object, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))
    return False


def depth_and_quotes(obj: object, limit: int) -> int:
    """-1 if JSON nesting goes deeper than ``limit`` (as :func:`depth_exceeds`), else the quote characters the
    parsed value was written with, escapes aside: two per key and two per string
    (formats/duplicate_keys.py: a key sent twice leaves the text with more). One iterative walk for both,
    cheaper than :func:`depth_exceeds` alone (no generator per container)."""
    n = 0
    stack: list[tuple[object, int]] = [(obj, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > limit:
            return -1
        t = type(node)
        if t is dict:
            n += 2 * len(node)  # type: ignore[arg-type]
            children = node.values()  # type: ignore[union-attr]
        elif t is list:
            children = node  # type: ignore[assignment]
        else:
            if t is str:  # the root itself
                n += 2
            continue
        for v in children:
            tv = type(v)
            if tv is str:
                n += 2
            elif tv is dict or tv is list:
                push((v, depth + 1))
    return n


_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_RAW_DECODE = json.JSONDecoder().raw_decode


def array_item_spans(text: str) -> list[tuple[int, int]] | None:
    """Where each item of the top-level JSON array in ``text`` starts and ends.

    Quarantine keeps a rejected array item (a canonical reading, a SenML record) as the bytes it
    arrived as, not as a re-serialised copy: a re-serialisation loses what made the item odd
    (``NaN`` became ``null``), and some items (a JSON-escaped lone surrogate) cannot be serialised
    to UTF-8 at all. None when ``text`` is not a JSON array."""
    space = _JSON_SPACE.match
    at = space(text, 0).end()
    if text[at:at + 1] != "[":
        return None
    at = space(text, at + 1).end()
    spans: list[tuple[int, int]] = []
    if text[at:at + 1] == "]":
        return spans
    while True:
        try:
            _, end = _RAW_DECODE(text, at)
        except (ValueError, RecursionError):
            return None
        spans.append((at, end))
        at = space(text, end).end()
        sep = text[at:at + 1]
        if sep == "]":
            return spans
        if sep != ",":
            return None
        at = space(text, at + 1).end()
