"""Kafka source on aiokafka: consumer group, offsets committed only after durable writes.

- ``enable_auto_commit=False``; each ``getmany`` batch commits ``last offset + 1`` per partition
  from the pipeline's ack, which runs after the batch's database transaction committed; the
  commits that are due together go out as one (:class:`OffsetCommit`, the latest offsets).
- On rebalance, before partitions are revoked, the pipeline is drained (written and
  committed), so the next owner starts exactly where this one stopped.
- A crash between write and commit means redelivery, which storage absorbs idempotently.
- ``assignment: manual`` (one worker): no group join at all. The worker assigns itself every
  partition of its topics, starts each from the group's committed offset, and commits to the
  group as above. A join costs seconds on every start (Tansu: half the session for a new group,
  about two sessions after a kill); this costs one metadata request. New partitions of a topic
  are picked up when the client's metadata refreshes (``metadata_max_age_ms``, 5 min), after
  the batches in flight are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
import logging
import operator
import time
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.helpers import create_ssl_context

from urbanpulse.config import KafkaSettings
from urbanpulse.connectors.base import Sink
from urbanpulse.connectors.kafka_inflate import begin_fetch, install as bound_inflation
from urbanpulse.connectors.kafka_records import LEAN, RecordRun, UnreadableBatch, install as install_lean_records, \
    start_loading
from urbanpulse.errors import PluginError
from urbanpulse.formats.base import MessageBatch
from urbanpulse.log_throttle import throttle_repeated_messages
from urbanpulse.metrics import IngestMetrics
from urbanpulse.model import Reason, Rejection

log = logging.getLogger(__name__)


class _DrainOnRevoke(ConsumerRebalanceListener):
    """Flush and commit everything in flight before partitions move to another worker, for at
    most ``timeout_s`` (the group waits for this member no longer than ``rebalance_timeout_ms``,
    which is set to match): a database that is down must not hold the whole group. What is not
    committed by then the new owner re-reads, and storage absorbs it idempotently."""

    def __init__(self, pipeline: Sink | None, timeout_s: float) -> None:
        self.pipeline = pipeline  # None while the consumer joins ahead of the pipeline: nothing in flight
        self.timeout_s = timeout_s

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked and self.pipeline is not None:
            log.info("partitions %s being revoked: draining in-flight batches first", sorted(map(str, revoked)))
            # shielded: a drain cut short goes on in the background (never half-dispatches a batch)
            try:
                await _bounded(self.pipeline.drain(), self.timeout_s)
            except asyncio.TimeoutError:
                log.warning("in-flight batches not committed within %.0fs of the rebalance: letting the partitions "
                            "go; their new owner re-reads what was not committed (stored once)", self.timeout_s)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("assigned partitions %s", sorted(map(str, assigned)))


async def _bounded(coro: Awaitable[Any], timeout_s: float) -> Any:
    """Await ``coro`` for at most ``timeout_s`` (TimeoutError after), letting it finish in the
    background instead of cancelling it half-way; its late failure is only logged at debug level."""
    task = asyncio.ensure_future(coro)
    task.add_done_callback(lambda t: t.cancelled() or t.exception() is None
                           or log.debug("late %s: %s", type(t.exception()).__name__, t.exception()))
    return await asyncio.wait_for(asyncio.shield(task), timeout_s)


def rebalance_timeout_ms(settings: KafkaSettings) -> int:
    """How long the group waits for this member to rejoin: the bounded drain on revoke plus 5 s to
    rejoin, and never less than the session timeout (aiokafka's default)."""
    return max(settings.session_timeout_ms, int(settings.revoke_drain_timeout_s * 1000) + 5000)


def heartbeat_interval_ms(settings: KafkaSettings) -> int:
    """The configured heartbeat interval, at most a third of the session timeout: a shorter
    session (``session_timeout_ms: 2000`` forms a new group in 1 s on Tansu; docs/operations.md)
    needs no second setting, and three heartbeats can be lost before the member is."""
    return max(1, min(settings.heartbeat_interval_ms, settings.session_timeout_ms // 3))


def group_options(settings: KafkaSettings) -> dict[str, Any]:
    """aiokafka keyword arguments for the consumer group: manual commits, the group timers and,
    when configured, static membership (``group_instance_id``; see docs/operations.md)."""
    s = settings
    opts: dict[str, Any] = dict(
        bootstrap_servers=s.bootstrap_servers, group_id=s.group_id, client_id=s.client_id,
        enable_auto_commit=False, auto_offset_reset=s.auto_offset_reset,
        max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024,
        fetch_max_wait_ms=s.fetch_max_wait_ms,
        session_timeout_ms=s.session_timeout_ms, heartbeat_interval_ms=heartbeat_interval_ms(s),
        rebalance_timeout_ms=rebalance_timeout_ms(s))
    if s.group_instance_id is not None:
        opts["group_instance_id"] = s.group_instance_id
    return opts


def consumer_options(settings: KafkaSettings) -> dict[str, Any]:
    """aiokafka keyword arguments for the configured security options."""
    opts: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol in ("SSL", "SASL_SSL") or settings.tls.enabled:
        ctx = create_ssl_context(
            cafile=str(settings.tls.ca_file) if settings.tls.ca_file else None,
            certfile=str(settings.tls.cert_file) if settings.tls.cert_file else None,
            keyfile=str(settings.tls.key_file) if settings.tls.key_file else None)
        if settings.tls.insecure_skip_verify:
            ctx.check_hostname = False
            import ssl
            ctx.verify_mode = ssl.CERT_NONE
        opts["ssl_context"] = ctx
    if settings.security_protocol.startswith("SASL"):
        opts.update(sasl_mechanism=settings.sasl_mechanism or "PLAIN",
                    sasl_plain_username=settings.sasl_username, sasl_plain_password=settings.sasl_password)
    return opts


async def _wait_or(event: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``event`` is set first."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:
        pass


_OFFSET = operator.attrgetter("offset")


def record_offsets(records: list[Any]) -> list[int]:
    """The offsets of one partition's fetched ``records`` (aiokafka's, before or without the
    compiled record parser), in order, each record's own.

    A partition's offsets increase as a broker writes them, but a broker that keeps batches as
    produced (Tansu) hands over a hostile producer's offset deltas as they are: 0, 1, 1, 3 span
    0..3 in four records, and a ``range`` from the ends would label them 0, 1, 2, 3 (a quarantine
    row's offset one off, ``hostile36``). So every record's offset is read (~30 ns a record, against
    ~10 for the range; aiokafka's iteration alone costs ~125). The compiled parser's path checks its
    offsets in C instead (kafka_records.offset_labels)."""
    return list(map(_OFFSET, records))


class OffsetCommit:
    """A fetch's acknowledgement: commit ``last offset + 1`` of each of its partitions.

    Mergeable (pipeline/batch.py, ``MergeableAck``): the ack ledger runs the commits that became
    due together as one, with the later fetch's offset where both name a partition. That leaves
    the group's offsets where the commits one after another would have left them, with one broker
    round trip instead of one per fetch (a batch at half the sustained rate holds several
    fetches; issue 14 item 6)."""

    __slots__ = ("source", "consumer", "offsets")

    def __init__(self, source: KafkaSource, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        self.source = source
        self.consumer = consumer
        self.offsets = offsets

    def __call__(self) -> Awaitable[None]:
        return self.source._commit(self.consumer, self.offsets)

    def merged(self, later: object) -> OffsetCommit | None:
        """One commit standing for this one and then ``later`` (the same consumer's); else None."""
        if not isinstance(later, OffsetCommit) or later.source is not self.source or later.consumer is not self.consumer:
            return None
        return OffsetCommit(self.source, self.consumer, {**self.offsets, **later.offsets})


#: ``assignment: manual``: how often the client's metadata is looked at for new partitions
MANUAL_GROW_CHECK_S = 10.0

#: how long a shutdown keeps retrying offset commits the broker refused (a group rejoin takes ~5 s)
SHUTDOWN_COMMIT_RETRY_S = 12.0


class KafkaSource:
    """Consumes canonical JSON readings from Kafka topics in a consumer group."""

    name = "kafka"
    Config = KafkaSettings  # its typed config: the `kafka:` section

    def __init__(self, settings: KafkaSettings, metrics: IngestMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.connected = False
        self.last_error: str | None = None
        self.assigned: list[str] = []
        self._lane_of: dict[TopicPartition, int] = {}  # dense lane id per topic-partition ever read
        self._failed_commits: dict[TopicPartition, int] = {}  # refused by the broker, not yet covered
        self._last_contact: float | None = None  # monotonic time of the last metadata answer (see _probe)
        self._probe_error: str | None = None
        self._reachable = True
        self._early: asyncio.Future[AIOKafkaConsumer | None] | None = None  # start_early()'s connection
        self._early_stop = asyncio.Event()
        self._early_listener: _DrainOnRevoke | None = None

    @property
    def commit_timeout_s(self) -> float:
        """How long one offset commit may take before it counts as failed (see :meth:`_commit`)."""
        return max(5.0, self.settings.session_timeout_ms / 1000)

    @property
    def unreachable_after_s(self) -> float:
        """No answer from the cluster this long counts as a lost broker: half the session timeout,
        so /health says so before the group gives up on this worker."""
        return self.settings.session_timeout_ms / 2000

    def health(self) -> dict[str, object]:
        connected = self.connected
        last_error = self.last_error
        if connected and self._last_contact is not None:
            silent = time.monotonic() - self._last_contact
            if silent > self.unreachable_after_s:
                connected = False
                last_error = (f"Kafka unreachable at {self.settings.bootstrap_servers}: no answer for {silent:.0f}s "
                              f"({self._probe_error or 'no metadata response'})")
        return {"connected": connected, "assigned": self.assigned, "last_error": last_error}

    async def _probe(self, consumer: AIOKafkaConsumer) -> None:
        """Ask the cluster for metadata every few seconds: aiokafka retries a lost broker on its own
        and reports nothing to its caller, so this is how /health learns the broker is gone."""
        period = max(0.5, self.unreachable_after_s / 3)
        while True:
            try:
                await asyncio.wait_for(consumer.topics(), period)
            except (KafkaError, asyncio.TimeoutError, OSError) as exc:
                self._probe_error = f"{type(exc).__name__}: {exc}"
                if self._reachable:
                    self._reachable = False
                    log.error("Kafka at %s does not answer (%s); /health reports it once it has been silent "
                              "for %.0fs", self.settings.bootstrap_servers, self._probe_error,
                              self.unreachable_after_s)
            else:
                self._last_contact = time.monotonic()
                self._probe_error = None
                if not self._reachable:
                    self._reachable = True
                    self.last_error = None
                    log.info("Kafka at %s answers again", self.settings.bootstrap_servers)
            await asyncio.sleep(period)

    def start_early(self) -> None:
        """Begin connecting now, before the pipeline exists (``urbanpulse run`` calls this first
        thing, start_ahead.py): the client connects, and joins its group (mostly a wait for the
        broker: on Tansu half the session timeout) or with ``assignment: manual`` takes its
        partitions, while the service imports its modules and migrates. Nothing is taken from the
        consumer and nothing is committed until :meth:`run` is given the pipeline; aiokafka may
        prefetch records into its own buffer meanwhile. Needs a running event loop."""
        if self._early is None:
            self._early_stop = asyncio.Event()
            self._early_listener = _DrainOnRevoke(None, self.settings.revoke_drain_timeout_s)
            self._early = asyncio.ensure_future(self._open_ahead(self._early_listener, self._early_stop))

    async def _open_ahead(self, listener: _DrainOnRevoke, stopping: asyncio.Event) -> AIOKafkaConsumer | None:
        """:meth:`_open` ahead of the pipeline, or None to join later, from :meth:`run`: a group
        that already has members is joined only when the pipeline runs, as before. Those members
        are other workers (a join now would rebalance them for nothing yet) or this worker's
        previous process, killed without leaving: Tansu lists it until a join expels it, and a
        join begun right after the kill took about twice as long as one begun a second later
        (benchmarks/README.md, "The start overlapped")."""
        if self.settings.assignment != "manual" and await self._group_has_members():
            return None
        return await self._open(listener, stopping)

    async def _group_has_members(self) -> bool:
        """Whether the consumer group lists members now (True too when that cannot be told)."""
        s = self.settings
        from aiokafka.admin import AIOKafkaAdminClient

        opts = consumer_options(s)
        admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap_servers, client_id=s.client_id, **opts)
        try:
            await asyncio.wait_for(admin.start(), 5)
            answer = await asyncio.wait_for(admin.describe_consumer_groups([s.group_id]), 5)
            groups = [g for resp in answer for g in resp.groups]
            members = [m for g in groups for m in g[5]] if all(g[0] == 0 for g in groups) else None
        except (KafkaError, OSError, asyncio.TimeoutError, IndexError, TypeError) as exc:
            log.debug("cannot describe consumer group %r (%s): joining once the pipeline runs", s.group_id, exc)
            return True
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        if members is None:
            return True
        if members:
            log.info("consumer group %r has %d member(s) (other workers, or this one's previous process not "
                     "yet expired): joining once the pipeline runs", s.group_id, len(members))
        return bool(members)

    @property
    def joining(self) -> bool:
        """Whether the consumer opened ahead is still waiting for its partitions (the group join)."""
        early = self._early
        if early is None:
            return False
        if not early.done():
            return True
        consumer = None if early.cancelled() or early.exception() is not None else early.result()
        return consumer is not None and not consumer.assignment()

    async def abandon_early(self) -> None:
        """The start failed after :meth:`start_early`: leave, committing nothing (idempotent)."""
        early, self._early = self._early, None
        if early is None:
            return
        self._early_stop.set()
        consumer = await asyncio.gather(early, return_exceptions=True)
        if isinstance(consumer[0], AIOKafkaConsumer):
            self.connected = False
            await consumer[0].stop()

    async def _open(self, listener: _DrainOnRevoke, stopping: asyncio.Event) -> AIOKafkaConsumer | None:
        """A started consumer (connected; a group member, or with ``assignment: manual`` holding
        every partition), retrying a retriable failure with back-off; None if ``stopping`` first."""
        s = self.settings
        # a supervisor may call run again after a failure: a new consumer resumes from the
        # group's committed offsets, so what the failed one had not committed is read again
        self.connected = False
        self.assigned = []
        self._failed_commits = {}
        self._last_contact = None
        self._reachable = True
        throttle_repeated_messages()  # a lost broker makes aiokafka log ~60 errors a second
        # records handed over a batch at a time, not as a dataclass each (connectors/kafka_records.py)
        install_lean_records()
        bound_inflation(s.max_decompressed_bytes)  # a compressed batch inflates at most this far (kafka_inflate.py)
        start_loading()  # the compiled record parser, on a thread: aiokafka's records until it is loaded
        consumer = AIOKafkaConsumer(**group_options(s), **consumer_options(s), value_deserializer=LEAN)
        manual = s.assignment == "manual"
        if not manual:
            consumer.subscribe(s.topics, listener=listener)
        delay = 0.5
        while not stopping.is_set():
            try:
                await consumer.start()
                break
            except KafkaError as exc:
                self.last_error = f"cannot reach Kafka at {s.bootstrap_servers}: {exc}"
                if not exc.retriable:
                    await consumer.stop()
                    raise  # e.g. authentication or authorization: the supervisor restarts and shows it
                log.warning("%s; retrying in %.1fs", self.last_error, delay)
                await _wait_or(stopping, delay)
                delay = min(delay * 2, 30)
        else:
            await consumer.stop()
            return None
        self.connected = True
        self._last_contact = time.monotonic()
        if manual and not await self._assign_all(consumer, stopping):
            await consumer.stop()
            return None  # stopped while the topics did not exist yet
        return consumer

    async def run(self, pipeline: Sink, stopping: asyncio.Event) -> None:
        early, self._early = self._early, None
        if early is not None:  # connecting since start_early(): the pipeline now exists
            self._early_listener.pipeline = pipeline
            waiting = asyncio.ensure_future(stopping.wait())
            await asyncio.wait({early, waiting}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if not early.done():  # stopped while connecting
                self._early_stop.set()
            consumer = await early
        else:
            consumer = None
        if consumer is None and not stopping.is_set():  # not opened ahead (or left for now, see _open_ahead)
            consumer = await self._open(_DrainOnRevoke(pipeline, self.settings.revoke_drain_timeout_s), stopping)
        if consumer is None:
            return
        if stopping.is_set():
            self.connected = False
            await consumer.stop()
            return
        probe = asyncio.create_task(self._probe(consumer), name="kafka-probe")
        try:
            await self._consume(consumer, pipeline, stopping)
        finally:
            probe.cancel()
            await pipeline.drain()
            await self._retry_failed_commits(consumer)
            self.connected = False
            await consumer.stop()

    def _all_partitions(self, consumer: AIOKafkaConsumer) -> set[TopicPartition] | None:
        """Every partition of the configured topics in the client's metadata (None: a topic has none yet)."""
        out: set[TopicPartition] = set()
        for topic in self.settings.topics:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                return None
            out.update(TopicPartition(topic, p) for p in parts)
        return out

    async def _assign_all(self, consumer: AIOKafkaConsumer, stopping: asyncio.Event) -> bool:
        """``assignment: manual``: take every partition of the topics, waiting (as a group
        subscription would) for topics that do not exist yet. Each partition starts at the group's
        committed offset (``auto_offset_reset`` where there is none). False if stopped first."""
        delay = 0.5
        while not stopping.is_set():
            parts = self._all_partitions(consumer)
            if parts is not None:
                await self._find_coordinator(consumer, min(parts))
                consumer.assign(sorted(parts))
                self.assigned = sorted(f"{tp.topic}[{tp.partition}]" for tp in parts)
                log.info("assigned partitions %s (kafka.assignment: manual, offsets from group %r)",
                         self.assigned, self.settings.group_id)
                return True
            missing = [t for t in self.settings.topics if not consumer.partitions_for_topic(t)]
            log.warning("Kafka topics %s not found at %s yet; waiting for them", missing, self.settings.bootstrap_servers)
            # aiokafka refreshes tracked topics only every metadata_max_age_ms: ask now
            if await consumer._client.force_metadata_update():  # noqa: SLF001 - no public way to refresh
                self._last_contact = time.monotonic()  # the cluster answers (/health): the topics are missing
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)
        return False

    async def _find_coordinator(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        """``assignment: manual``: let the client find the group's coordinator before ``assign``.
        ``assign`` starts aiokafka's committed-offset refresh, which asks the coordinator at once;
        while the client's lookup (begun by ``start``) is still in flight, that ask fails at once
        and the refresh sleeps ``retry_backoff_ms`` (100 ms) before asking again, so the first
        fetch, and the first batch stored, waited 50-100 ms for nothing at every start
        (benchmarks/README.md ``start27``). ``committed`` (public) waits for the lookup, then asks
        for one partition's offset: one round trip. Bounded; if it fails, aiokafka's own retries
        take over as before. Where the partitions start is unchanged: ``assign`` still reads every
        partition's committed offset (``auto_offset_reset`` where there is none)."""
        try:
            await asyncio.wait_for(consumer.committed(tp), self.commit_timeout_s)
        except (KafkaError, asyncio.TimeoutError) as exc:
            log.debug("group coordinator for %r not found before the assignment (%s); aiokafka retries",
                      self.settings.group_id, exc)

    async def _grow_assignment(self, consumer: AIOKafkaConsumer, pipeline: Sink) -> None:
        """``assignment: manual``: partitions added to a topic since the assignment are taken too,
        after everything in flight is committed (``assign`` restarts every partition from its
        committed offset; what was fetched and not yet handed over is fetched again)."""
        parts = self._all_partitions(consumer)
        if parts is None or parts <= consumer.assignment():
            return
        await pipeline.drain()
        consumer.assign(sorted(parts | consumer.assignment()))
        self.assigned = sorted(f"{tp.topic}[{tp.partition}]" for tp in consumer.assignment())
        log.info("topic partitions grew: now reading %s", self.assigned)

    async def _consume(self, consumer: AIOKafkaConsumer, pipeline: Sink, stopping: asyncio.Event) -> None:
        lag = self.metrics.kafka_lag
        fetched = self.metrics.kafka_fetch_delay
        fetch_delay = 0.5
        manual = self.settings.assignment == "manual"
        #: each partition's lag when it was last fetched (high watermark minus the next offset handed
        #: over): their sum is ``MessageBatch.behind``, the backlog of every partition read so far
        #: and still owned, not only of the ones this fetch happened to hold
        lags: dict[TopicPartition, int] = {}
        grow_check_at = time.monotonic() + MANUAL_GROW_CHECK_S
        while not stopping.is_set():
            if manual and time.monotonic() >= grow_check_at:
                grow_check_at = time.monotonic() + MANUAL_GROW_CHECK_S
                await self._grow_assignment(consumer, pipeline)
            try:
                begin_fetch()  # the inflation budget of one getmany (kafka_inflate.py)
                data = await consumer.getmany(timeout_ms=200, max_records=self.settings.max_records)
            except KafkaError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                if not exc.retriable:
                    raise  # retrying cannot help (authorization, a record too large ...): the supervisor shows it
                log.warning("Kafka fetch failed (%s); retrying in %.1fs", self.last_error, fetch_delay)
                await asyncio.sleep(fetch_delay)
                fetch_delay = min(fetch_delay * 2, 30)
                continue
            fetch_delay = 0.5
            self.assigned = sorted(f"{tp.topic}[{tp.partition}]" for tp in consumer.assignment())
            if not data:
                continue
            payloads: list[bytes] = []
            topics: list[str] = []
            partitions: list[int] = []
            offsets: list[int] = []
            lanes: list[int] = []
            runs: list[int] = []
            commit: dict[TopicPartition, int] = {}
            now_ms = time.time() * 1000
            unreadable: list[Rejection] = []
            for tp, records in data.items():
                if type(records) is list and type(records[0]) is UnreadableBatch:  # alone (kafka_records.py)
                    unreadable.append(self._unreadable(tp, records[0]))
                    commit[tp] = records[0].next_offset
                    continue
                if type(records) is RecordRun:  # parsed from the fetch's bytes (connectors/kafka_records.py)
                    first_ts = int(records.timestamps[0])
                    values = records.values
                    payloads.extend([v if v is not None else b"" for v in values] if records.has_null else values)
                    offsets.extend(records.offsets)
                    commit[tp] = records.offsets[-1] + 1 if records.resume is None else records.resume
                else:
                    first_ts = records[0].timestamp
                    payloads.extend([r.value if r.value is not None else b"" for r in records])
                    offs = getattr(records, "offsets", None)  # read once by kafka_records.check_offsets
                    offsets.extend(offs if offs is not None else record_offsets(records))
                    resume = getattr(records, "resume", None)  # a split hostile batch (kafka_records.RecordList)
                    commit[tp] = records[-1].offset + 1 if resume is None else resume
                if first_ts is not None and first_ts > 0:
                    fetched.observe(max(0.0, now_ms - first_ts) / 1000)
                lanes.append(self._lane_of.setdefault(tp, len(self._lane_of)))
                runs.append(len(records))
                topics.extend([tp.topic] * len(records))
                partitions.extend([tp.partition] * len(records))
                high = consumer.highwater(tp)
                if high is not None:
                    lag.labels(tp.topic, str(tp.partition)).set(high - commit[tp])
                    lags[tp] = max(0, high - commit[tp])
            owned = consumer.assignment()
            for tp in [tp for tp in lags if tp not in owned]:
                del lags[tp]  # revoked: another worker's backlog now
            # a fetch short of max_records emptied aiokafka's prefetch buffer: nothing more to wait for
            batch = MessageBatch(source=self.name, payloads=payloads, topics=topics, partitions=partitions,
                                 offsets=offsets, received_ns=time.time_ns(),
                                 lanes=np.repeat(np.array(lanes, np.int16), runs),
                                 caught_up=len(payloads) < self.settings.max_records, behind=sum(lags.values()))
            if not unreadable:
                await pipeline.submit(batch, ack=OffsetCommit(self, consumer, commit))
                continue
            # the readable records first, then the unreadable batches, whose quarantine acknowledges
            # (commits) them all: acknowledgements run in order, once everything before is durable
            if payloads:
                await pipeline.submit(batch)
            await self._quarantine(pipeline, unreadable, OffsetCommit(self, consumer, commit))

    def _unreadable(self, tp: TopicPartition, u: UnreadableBatch) -> Rejection:
        """The quarantine row of a record batch that cannot be read (kafka_records.UnreadableBatch)."""
        log.error("Kafka record batch %s[%d] at offset %d cannot be read (%s): quarantined whole as fetched "
                  "(%d bytes, reason %s), reading on from offset %d", tp.topic, tp.partition, u.offset,
                  u.error, len(u.value), u.reason, u.next_offset)
        self.last_error = f"unreadable record batch at {tp.topic}[{tp.partition}] offset {u.offset}: {u.error}"
        detail = (f"a Kafka record batch (offsets {u.offset}..{u.next_offset - 1}) that cannot be read: {u.error}; "
                  f"quarantined whole as fetched, the records in it were not decoded; the consumer read on from "
                  f"offset {u.next_offset}")
        detail = detail.encode("utf-8", "backslashreplace").decode()[:1000]
        return Rejection(reason=Reason(u.reason), detail=detail, payload=u.value, source=self.name,
                         topic=tp.topic, partition=tp.partition, offset=u.offset)

    async def _quarantine(self, pipeline: Sink, rejections: list[Rejection], ack: OffsetCommit) -> None:
        quarantine = getattr(pipeline, "quarantine", None)
        if quarantine is None:
            raise PluginError("an unreadable Kafka record batch must be quarantined, and this sink has no "
                              "quarantine(): run the Kafka source into urbanpulse's pipeline (Pipeline.quarantine)")
        await quarantine(self.name, rejections, ack)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        owned = consumer.assignment()
        mine = {tp: o for tp, o in offsets.items() if tp in owned}
        if not mine:
            return  # revoked meanwhile: the new owner re-reads these, storage is idempotent
        try:
            # aiokafka retries a retriable commit error (no coordinator, a timeout) until it succeeds:
            # bounded here, so a lost broker cannot hold every source's acknowledgements
            await _bounded(consumer.commit(mine), self.commit_timeout_s)
            for tp in mine:
                self._failed_commits.pop(tp, None)
        except (CommitFailedError, KafkaError, asyncio.TimeoutError) as exc:
            what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.last_error = f"commit failed: {what}"
            self._failed_commits.update(mine)  # the next commit covers them; at shutdown they are retried
            log.warning("offset commit failed (%s); the next commit covers those offsets, else they are "
                        "redelivered and stored once", what)

    async def _retry_failed_commits(self, consumer: AIOKafkaConsumer) -> None:
        """At shutdown, commit again what the broker refused (it dropped the member and made it
        rejoin): while running, the next commit covers it, but the last one has no next. Bounded;
        what still fails is redelivered to the next owner and stored once."""
        deadline = time.monotonic() + SHUTDOWN_COMMIT_RETRY_S
        while self._failed_commits and time.monotonic() < deadline:
            await asyncio.sleep(0.5)  # the consumer rejoins the group in the background
            owned = consumer.assignment()
            mine = {tp: o for tp, o in self._failed_commits.items() if tp in owned}
            if owned and not mine:
                return  # rejoined without those partitions: their new owner re-reads them
            if not mine:
                continue
            try:
                left = max(0.5, deadline - time.monotonic())
                await _bounded(consumer.commit(mine), left)
            except (CommitFailedError, KafkaError, asyncio.TimeoutError) as exc:
                log.info("offset commit at shutdown still refused (%s); retrying", type(exc).__name__)
                continue
            for tp in mine:
                self._failed_commits.pop(tp, None)
            log.info("offsets the broker refused earlier are committed")
