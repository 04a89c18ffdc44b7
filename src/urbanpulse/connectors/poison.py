"""Poison-message handling: a message that crashed its source is quarantined on redelivery.

Per-message isolation (pipeline/formats) turns what a format raises into a quarantine row; this
is the net under it, for whatever still kills a source. The supervisor hands each source a
:class:`GuardedPipeline` instead of the pipeline itself; it remembers the batch being decoded.
When the source fails, :meth:`PoisonGuard.record_failure` stores every message of that batch as a
suspect (memory and the ``source_suspects`` table, so a process restart keeps them) before the
source is restarted. On redelivery:

- a suspect is decoded **alone**, never with other messages: if it passes it is forgotten; if it
  crashes the source again, it crashed a batch of one, so it is the poison;
- a message that crashed a batch of one is **not decoded again**: it is quarantined with reason
  ``poison_message`` (the detail says what crashed it) in the source's next batch, and
  acknowledged only once that batch is durable, like everything else.

So a poison message costs at most two restarts (one to narrow a batch down to it, one to name
it), and one restart when it arrived alone. While a source has no suspects, the guard adds one
dictionary lookup per batch.

When a poison message's quarantine is acknowledged, what happens to its suspect depends on
whether the transport confirms the acknowledgement (:attr:`Suspect.stable_id`):

- a Kafka record is forgotten: its offset commit took effect, so that record never comes back;
- an MQTT message is **kept until** ``forget_after_s`` after the failure that named it. Nothing
  tells a client that its PUBACK arrived; when one is lost, mosquitto redelivers the message with
  DUP, and a forgotten suspect was decoded and crashed the source once more (hostile40). Kept, the
  redelivery is quarantined again without being decoded, and its row, marked redelivered, is not
  written twice (storage/quarantine_keys.py). An MQTT message is named by its topic and payload
  hash only, so a sensor that sends the very same bytes again (no DUP) within that time gets a
  ``poison_message`` row of its own for each sending, as any repeated bad message does (dup39):
  never dropped, never decoded. Those bytes crashed the source when decoded alone, so decoding
  them again would crash it again. After ``forget_after_s`` the key is decoded like any message.

A failure that kills the whole process before the supervisor sees it (a segfault) is not
recorded: the supervisor only knows what an exception tells it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any

from urbanpulse.connectors.suspects import Suspect, SuspectStore, message_key, payload_hash
from urbanpulse.formats.base import MessageBatch
from urbanpulse.model import Reason, Rejection
from urbanpulse.pipeline import Ack, Pipeline

log = logging.getLogger(__name__)

#: attempts to store the suspects before a restart (the database may be what failed)
SAVE_ATTEMPTS = 3


class PoisonGuard:
    """Remembers the messages that crashed each source and screens their redeliveries."""

    def __init__(self, store: SuspectStore, forget_after_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.forget_after_s = forget_after_s
        self.clock = clock  # wall-clock seconds, as the table's last_seen
        self.suspects: dict[str, dict[str, Suspect]] = {}
        self._expiry: dict[str, float] = {}  # per source: when its oldest suspect is to be forgotten
        self.unkeyed_topics: dict[str, set[str | None]] = {}  # per source: topics of suspects without an offset
        self._views: dict[str, GuardedPipeline] = {}
        self.poisoned: dict[str, int] = {}  # messages quarantined as poison, per source

    async def load(self) -> None:
        """Read the suspects earlier runs left (and drop those older than ``forget_after_s``)."""
        self.suspects = await self.store.load(self.forget_after_s)
        for source in self.suspects:
            self._changed(source)
        n = sum(len(v) for v in self.suspects.values())
        if n:
            log.warning("%d message(s) crashed a source before: they are decoded alone or quarantined when "
                        "redelivered (table source_suspects)", n)

    def view(self, source: str, pipeline: Pipeline) -> GuardedPipeline:
        """The pipeline as ``source`` should see it for one run."""
        v = self._views[source] = GuardedPipeline(self, source, pipeline)
        return v

    def count(self, source: str) -> int:
        """How many suspects ``source`` has."""
        return len(self.suspects.get(source, ()))

    async def record_failure(self, source: str, error: str) -> None:
        """``source`` failed with ``error``: make every message it was decoding a suspect, durably."""
        view = self._views.get(source)
        batch = view.current if view is not None else None
        if batch is None:
            return  # it failed outside a decode: no message to blame
        view.current = None
        mine = self.suspects.setdefault(source, {})
        alone = len(batch.payloads) == 1
        changed: list[Suspect] = []
        privacy = getattr(view.pipeline, "privacy", None)
        if privacy is not None and privacy.withholds(batch):  # docs/privacy.md: no personal text kept
            error = error.split(":", 1)[0] + " (text withheld: personal data)"
        for i, payload in enumerate(batch.payloads):
            topic, partition, offset = batch.provenance(i)
            topic = _stored_topic(view.pipeline, source, topic)
            sha = payload_hash(payload)
            key = message_key(topic, partition, offset, sha)
            old = mine.get(key)
            same = old is not None and old.sha256 == sha
            s = Suspect(key, topic, partition, offset, sha, (old.crashes if same else 0) + 1,
                        alone or (same and old.alone), error, self.clock())
            mine[key] = s
            changed.append(s)
        self._changed(source)
        if alone:
            log.error("a %s message (topic %s) crashed the source on its own: it will be quarantined as "
                      "poison_message when redelivered", source, changed[0].topic)
        else:
            log.warning("%d %s message(s) were being decoded when the source failed: when redelivered each is "
                        "decoded alone to find the one that crashed it", len(changed), source)
        for attempt in range(SAVE_ATTEMPTS):
            try:
                await self.store.save(source, changed)
                return
            except Exception as exc:  # noqa: BLE001 - memory still protects this process
                log.error("cannot store the suspects of %s (%s: %s)%s", source, type(exc).__name__, exc,
                          "; retrying" if attempt + 1 < SAVE_ATTEMPTS else
                          "; they are remembered until this process stops")
                await asyncio.sleep(0.5 * (attempt + 1))

    def _changed(self, source: str) -> None:
        """Note when ``source``'s oldest suspect is due to be forgotten (one comparison per batch
        then tells whether any is) and the topics of its suspects that have no offset (a message
        on another topic needs no payload hash: kept MQTT poison must not cost every message one)."""
        mine = self.suspects.get(source) or {}
        self._expiry[source] = (min(s.seen_at for s in mine.values()) + self.forget_after_s) if mine else math.inf
        self.unkeyed_topics[source] = {s.topic for s in mine.values() if not s.stable_id}

    async def unexpired(self, source: str) -> dict[str, Suspect]:
        """``source``'s suspects, after forgetting those older than ``forget_after_s``: a message
        with an expired suspect's key is decoded like any other (the kept MQTT poison included)."""
        mine = self.suspects.get(source, {})
        if source not in self._expiry:  # suspects set from outside (tests)
            self._changed(source)
        now = self.clock()
        if now < self._expiry[source]:
            return mine
        old = [k for k, s in mine.items() if now - s.seen_at >= self.forget_after_s]
        if old:
            log.info("forgetting %d %s suspect(s) older than %.0f s", len(old), source, self.forget_after_s)
            await self._forget(source, old)
        self._changed(source)
        return mine

    async def _forget(self, source: str, keys: list[str]) -> None:
        mine = self.suspects.get(source, {})
        for k in keys:
            mine.pop(k, None)
        self._changed(source)
        try:
            await self.store.forget(source, keys)
        except Exception as exc:  # noqa: BLE001 - a stale suspect is only decoded alone once more
            log.warning("cannot delete %d cleared suspect(s) of %s: %s", len(keys), source, exc)


def _stored_topic(pipeline: object, source: str, topic: str | None) -> str | None:
    """The topic a suspect is remembered and logged under: for a personal topic the filter that
    made it personal (privacy/stage.py), so no device id reaches source_suspects or the log."""
    privacy = getattr(pipeline, "privacy", None)
    return topic if privacy is None else privacy.safe_topic(source, topic)


class GuardedPipeline:
    """What a supervised source submits to: the pipeline, screening redelivered suspects.

    Everything but :meth:`submit` is the pipeline's own (``drain``, ``flush``, ...)."""

    def __init__(self, guard: PoisonGuard, source: str, pipeline: Pipeline) -> None:
        self.guard = guard
        self.source = source
        self.pipeline = pipeline
        #: the batch being decoded; left set when decoding it raised, for record_failure
        self.current: MessageBatch | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipeline, name)

    async def submit(self, batch: MessageBatch, ack: Ack | None = None) -> None:
        """Submit ``batch`` (see :meth:`Pipeline.submit`); suspects go alone, known poison to quarantine."""
        if self.guard.suspects.get(self.source):
            suspects = await self.guard.unexpired(self.source)
            if suspects:
                await self._screened(batch, ack, suspects)
                return
        self.current = batch
        await self.pipeline.submit(batch, ack)
        self.current = None

    def _suspects_in(self, batch: MessageBatch, suspects: dict[str, Suspect]) -> dict[int, Suspect]:
        """The messages of ``batch`` that are suspects, by index."""
        by_index: dict[int, Suspect] = {}
        for i in self._candidates(batch):
            topic, partition, offset = batch.provenance(i)
            topic = _stored_topic(self.pipeline, self.source, topic)
            sha = None if offset is not None else payload_hash(batch.payloads[i])
            s = suspects.get(message_key(topic, partition, offset, sha))
            if s is not None and (sha or payload_hash(batch.payloads[i])) == s.sha256:
                by_index[i] = s
        return by_index

    def _candidates(self, batch: MessageBatch) -> Iterable[int]:
        """The messages of ``batch`` that may be suspects. Without offsets (MQTT) only those on a
        suspect's topic, one set lookup per message: a kept MQTT poison message must not cost
        every later message a payload hash (see the module doc)."""
        if batch.offsets is not None:
            return range(len(batch.payloads))
        unkeyed = self.guard.unkeyed_topics[self.source]
        topics = batch.topics if batch.topics is not None else [None] * len(batch.payloads)
        if getattr(self.pipeline, "privacy", None) is None:
            return [i for i, t in enumerate(topics) if t in unkeyed]
        stored = {t: _stored_topic(self.pipeline, self.source, t) for t in set(topics)}
        return [i for i, t in enumerate(topics) if stored[t] in unkeyed]

    async def _screened(self, batch: MessageBatch, ack: Ack | None, suspects: dict[str, Suspect]) -> None:
        by_index = self._suspects_in(batch, suspects)
        if not by_index:
            self.current = batch
            await self.pipeline.submit(batch, ack)
            self.current = None
            return
        poison: list[Rejection] = []
        poison_keys: list[str] = []
        cleared: list[str] = []
        run: list[int] = []
        for i in range(len(batch.payloads)):
            s = by_index.get(i)
            if s is None:
                run.append(i)
                continue
            await self._submit_part(batch, run)
            run = []
            if s.alone:
                poison.append(self._rejection(batch, i, s))
                if s.stable_id:  # an MQTT one is kept (see the module doc)
                    poison_keys.append(s.key)
            else:
                await self._submit_part(batch, [i])  # raises again if it is the one
                cleared.append(s.key)
        await self._submit_part(batch, run)
        if cleared:
            await self.guard._forget(self.source, cleared)
        if poison:
            self.guard.poisoned[self.source] = self.guard.poisoned.get(self.source, 0) + len(poison)
            log.warning("quarantining %d %s message(s) that crashed the source before (poison_message)",
                        len(poison), self.source)
            if poison_keys:
                ack = partial(_then_forget, ack, self.guard, self.source, poison_keys)
        await self.pipeline.quarantine(batch.source, poison, ack)

    async def _submit_part(self, batch: MessageBatch, idx: list[int]) -> None:
        if not idx:
            return
        part = _take(batch, idx)
        self.current = part
        await self.pipeline.submit(part, None)  # the whole batch's ack goes with its last part
        self.current = None

    def _rejection(self, batch: MessageBatch, i: int, s: Suspect) -> Rejection:
        topic, partition, offset = batch.provenance(i)
        same = "this message" if s.stable_id else "a message with this topic and these bytes"
        detail = (f"{same} crashed the {self.source} source when decoded on its own ({s.error}; "
                  f"{s.crashes} failure(s) while it was being decoded); quarantined on redelivery instead of "
                  f"being decoded again")
        # an MQTT redelivery (DUP) of a poison message whose PUBACK got lost finds its row there already
        # (storage/quarantine_keys.py): without the flag it got a second one (hostile40)
        return Rejection(Reason.POISON_MESSAGE, detail, batch.payloads[i], batch.source, topic, partition, offset,
                         redelivered=batch.redelivered)


async def _then_forget(ack: Callable[[], Awaitable[None] | None] | None, guard: PoisonGuard, source: str,
                       keys: list[str]) -> None:
    """Acknowledge, then forget the poison messages whose quarantine is durable and acknowledged."""
    if ack is not None:
        result = ack()
        if result is not None:
            await result
    await guard._forget(source, keys)


def _take(batch: MessageBatch, idx: list[int]) -> MessageBatch:
    """The messages ``idx`` of ``batch``, with their provenance."""
    def pick(xs: list | None) -> list | None:
        return None if xs is None else [xs[i] for i in idx]

    return MessageBatch(source=batch.source, payloads=[batch.payloads[i] for i in idx], topics=pick(batch.topics),
                        partitions=pick(batch.partitions), offsets=pick(batch.offsets),
                        topic_fields=pick(batch.topic_fields), received_ns=batch.received_ns,
                        lanes=batch.lanes[idx] if batch.lanes is not None else None,
                        redelivered=batch.redelivered)
