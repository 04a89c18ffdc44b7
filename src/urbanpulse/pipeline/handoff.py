"""The typed hand-off between the ingest path and stream analytics (windows, detectors, alerts).

The pipeline does not know what analytics computes; it only moves an opaque, typed handle ``H``
through a batch's life: made when the batch is formed, waited for before the write, written in
the batch's transaction, published after the commit. :class:`AnalyticsFailures` is the one
place that enforces "analytics failing never stops ingestion": a failure costs the batch its
alert changes, is counted and logged (throttled), and the readings are stored anyway.
"""

from __future__ import annotations

import logging
from typing import Protocol, TypeVar

import asyncpg
import numpy as np

from urbanpulse.model import ReadingColumns
from urbanpulse.pipeline.throttled_log import ThrottledLog

log = logging.getLogger(__name__)

H = TypeVar("H")


class BatchAnalytics(Protocol[H]):
    """What the pipeline needs from stream analytics; ``H`` is the analytics' per-batch handle.

    ``failed_batches`` counts batches stored without analysis; the pipeline adds to it when
    :meth:`prepare`, :meth:`ready` or :meth:`write` raises."""

    failed_batches: int

    async def prepare(self, source: str, readings: ReadingColumns | None, series_ids: np.ndarray | None) -> H | None:
        """Start analysing a batch as it is formed (in batch order); None: nothing to analyse."""

    async def ready(self, handle: H | None) -> H | None:
        """Wait for the batch's analysis: quality flags set in its readings, alert changes decided.
        Returns what :meth:`write` and :meth:`committed` take; None when there is nothing to write.
        Called again with the same handle when a write is retried."""

    async def write(self, conn: asyncpg.Connection, handle: H) -> None:
        """Write the batch's analytics output inside the batch's transaction."""

    def committed(self, handle: H) -> None:
        """The batch is durable: publish (live streams, webhooks). Called in batch order."""

    async def tick(self) -> H | None:
        """Periodic work not tied to a batch (idle windows, silence); output is written like a batch."""


class AnalyticsFailures:
    """Counts and logs batches stored without (some of) their analysis."""

    def __init__(self, analytics: BatchAnalytics[H] | None) -> None:
        self.analytics = analytics
        self._log = ThrottledLog(log, "stream analytics failed while %s a batch from %s; its readings are stored "
                                      "without alert changes")

    def failed(self, doing: str, source: str, exc: BaseException) -> None:
        """``doing`` (preparing, analysing, writing the alert changes of) a batch of ``source`` raised."""
        if self.analytics is not None:
            self.analytics.failed_batches += 1
        self._log.failed(exc, doing, source)
