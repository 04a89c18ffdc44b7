"""Keeps every source running for the life of the service.

A source whose ``run`` raises is restarted
after a back-off that doubles per failure in a row (``supervision.restart_initial_s`` up to
``restart_max_s``; a source that ran ``healthy_after_s`` before failing starts again from the
first step). Each restart is counted on ``/metrics`` (``urbanpulse_source_restarts_total``)
and the last failure is shown on ``/health``; while it waits, the source reports itself not
connected, so ``/health`` answers 503 instead of pretending all is well.

The supervisor is generic over :class:`~urbanpulse.connectors.base.Source`: it needs only
``name``, ``run(pipeline, stopping)`` and ``health()``, and a source's ``run`` must be callable
again after it failed (the connectors reset their per-run state at the start of ``run``).
Before a failed source restarts, its own ``run`` has drained the pipeline: everything it
submitted before the failure is written and acknowledged, and what it had received but not
submitted is redelivered by the broker. With a :class:`~urbanpulse.connectors.poison.PoisonGuard`
attached, the messages that were being decoded when the source failed are remembered, so the
broker's redelivery of the one that crashed it is quarantined instead of crashing it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from urbanpulse.config import SupervisionSettings
from urbanpulse.connectors.base import Source
from urbanpulse.errors import SourceHalted
from urbanpulse.metrics import IngestMetrics
from urbanpulse.pipeline import Pipeline

if TYPE_CHECKING:
    from urbanpulse.connectors.poison import PoisonGuard

log = logging.getLogger(__name__)

#: exceptions that end the process on purpose: never swallowed by a restart
_NOT_RESTARTED = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)


class SourceSupervisor:
    """Runs one source, restarting it with back-off whenever it fails, until the service stops."""

    def __init__(self, source: Source, pipeline: Pipeline, metrics: IngestMetrics, settings: SupervisionSettings,
                 guard: PoisonGuard | None = None) -> None:
        self.source = source
        self.pipeline = pipeline
        self.metrics = metrics
        self.settings = settings
        self.guard = guard
        self.state = "starting"
        self.restarts = 0
        self.last_failure: str | None = None
        self.last_failure_at: str | None = None
        self.next_restart_at: float | None = None

    @property
    def name(self) -> str:
        """The supervised source's name (``mqtt``, ``kafka``, ...)."""
        return self.source.name

    def health(self) -> dict[str, object]:
        """The source's own health plus the supervisor's view: state, restarts, last failure.

        ``connected`` is false while the source waits to be restarted, whatever it said last."""
        try:
            body = dict(self.source.health())
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            body = {"connected": False, "last_error": f"health() failed: {type(exc).__name__}: {exc}"}
        body["state"] = self.state
        body["restarts"] = self.restarts
        body["last_failure"] = self.last_failure
        body["last_failure_at"] = self.last_failure_at
        if self.guard is not None:
            body["suspect_messages"] = self.guard.count(self.name)
            body["poison_quarantined"] = self.guard.poisoned.get(self.name, 0)
        halted = self.pipeline.halted.get(self.name)
        if halted is not None:
            body["acks_halted"] = halted
        if self.state in ("starting", "restarting", "halted") or halted is not None:
            body["connected"] = False
            if self.next_restart_at is not None:
                body["restart_in_s"] = round(max(0.0, self.next_restart_at - time.monotonic()), 1)
        return body

    async def run(self, stopping: asyncio.Event) -> None:
        """Run the source until ``stopping`` is set, restarting it after every failure."""
        s = self.settings
        up = self.metrics.source_up.labels(self.name)
        delay = s.restart_initial_s
        while not stopping.is_set():
            view = self.guard.view(self.name, self.pipeline) if self.guard is not None else self.pipeline
            started = time.monotonic()
            self.state = "running"
            self.next_restart_at = None
            up.set(1)
            try:
                await self.source.run(view, stopping)
            except _NOT_RESTARTED:
                up.set(0)
                self.state = "stopped"
                raise
            except BaseException as exc:  # noqa: BLE001 - whatever kills a source, it comes back
                failure = exc
            else:  # a finite source (a replay) is done; a broker source returns only when stopping
                up.set(0)
                if not stopping.is_set():
                    log.info("source %s finished", self.name)
                    self.state = "finished"
                    return
                break
            up.set(0)
            if stopping.is_set():
                break
            self.state = "restarting"
            if time.monotonic() - started >= s.healthy_after_s:
                delay = s.restart_initial_s
            what = f"{type(failure).__name__}: {failure}"
            self.last_failure = what
            self.last_failure_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            log.error("source %s failed (%s); restarting it in %.1fs", self.name, what, delay,
                      exc_info=failure)
            if isinstance(failure, SourceHalted):
                # not a message's fault: the pipeline parked a batch after a permanent write error.
                # Restart only once that batch is written; until then the broker keeps the messages.
                self.state = "halted"
                log.error("source %s stops until its parked batch is written: %s", self.name, failure)
                while self.name in self.pipeline.halted and not stopping.is_set():
                    await _wait(stopping, 1.0)
                if stopping.is_set():
                    break
                delay = s.restart_initial_s
                self.state = "restarting"
            elif self.guard is not None:
                await self.guard.record_failure(self.name, what)
            self.next_restart_at = time.monotonic() + delay
            if await _wait(stopping, delay):
                break
            delay = min(delay * 2, s.restart_max_s)
            self.restarts += 1
            self.metrics.source_restarts.labels(self.name).inc()
            log.info("restarting source %s (restart %d)", self.name, self.restarts)
        self.state = "stopped"
        self.next_restart_at = None


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``event`` is set first; True if it was set."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
        return True
    except asyncio.TimeoutError:
        return False
