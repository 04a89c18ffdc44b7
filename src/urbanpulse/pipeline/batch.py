"""One batch on its way from being formed to being acknowledged, and the acknowledgement type.

The batcher forms it (with a sequence number), the batch writer stores it, the ack ledger
acknowledges it; this record is what they hand each other, so each of them stays small.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

from urbanpulse.model import ReadingColumns, Rejection

#: runs once every message it covers is durable (MQTT PUBACK, Kafka commit, an HTTP answer)
Ack = Callable[[], Awaitable[None] | None]


@runtime_checkable
class MergeableAck(Protocol):
    """An acknowledgement that can stand for a later one too (a Kafka offset commit: committing
    the later offsets covers the earlier ones). The ack ledger runs the acknowledgements that
    became due together as one when each can take the next in (see ack_ledger.py)."""

    def __call__(self) -> Awaitable[None] | None: ...

    def merged(self, later: Ack) -> Ack | None:
        """One acknowledgement doing what running ``self`` then ``later`` would leave behind;
        None when ``later`` is of another kind (another consumer, another source)."""

#: the analytics' own per-batch handle (see pipeline/handoff.py)
H = TypeVar("H")


@dataclass(slots=True)
class Pending:
    """What a source has submitted since its last batch was formed."""

    started: float
    parts: list[ReadingColumns] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    size: int = 0
    #: wall clock (ns) when the source received the oldest of these messages; 0: not known
    received_ns: int = 0


@dataclass(slots=True, eq=False)
class Batch(Generic[H]):
    """A formed batch. ``seq`` orders commits and acknowledgements; ``readings`` is None for
    analytics output not tied to readings (the periodic tick)."""

    seq: int
    source: str
    readings: ReadingColumns | None
    rejections: list[Rejection]
    acks: list[Ack]
    series_ids: np.ndarray | None = None
    #: the analytics' handle: from prepare until the batch is written, then what committed() publishes
    analysis: H | None = None
    #: perf_counter() when the batch's oldest message was submitted, and when the batch was formed
    #: (urbanpulse_batch_stage_seconds); 0.0 for output not made of messages
    started: float = 0.0
    formed: float = 0.0
    #: wall clock (ns) when the source received the batch's oldest message; 0: not known
    received_ns: int = 0
    done: bool = False
    parked: bool = False  # failed with a permanent error; retried every retry_max_s (batch_writer.py)
    published: bool = False
    #: its write slot is free again (committed or parked: AckLedger calls ``settled`` once)
    slot_freed: bool = False

    def release_data(self) -> None:
        """Drop what a written batch no longer needs while its acknowledgement is held back."""
        self.readings, self.rejections, self.series_ids = None, [], None
