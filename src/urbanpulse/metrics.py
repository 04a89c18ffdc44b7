"""Prometheus metrics of one service instance (own registry, so tests can run several)."""

from __future__ import annotations

import bisect
import gc
import time
from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


#: seconds; fine below a second, where the latency targets are
LATENCY_BUCKETS = (.005, .01, .025, .05, .075, .1, .15, .2, .25, .3, .4, .5, .75, 1, 1.5, 2, 3, 5, 10)


class IngestMetrics:
    """Counters exposed on ``/metrics`` and a plain tally for the CLI summaries."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter("urbanpulse_messages_received", "Broker messages received", ["source"], registry=r)
        self.received = Counter("urbanpulse_readings_received", "Readings received (valid or not)", ["source"],
                                registry=r)
        self.stored = Counter("urbanpulse_readings_stored", "Readings newly stored", ["source"], registry=r)
        self.duplicates = Counter("urbanpulse_readings_duplicate", "Readings already stored (redeliveries)",
                                  ["source"], registry=r)
        self.quarantined = Counter("urbanpulse_readings_quarantined",
                                   "Quarantine rows written (a redelivery adds none)", ["source", "reason"], registry=r)
        self.batch_seconds = Histogram("urbanpulse_batch_write_seconds", "Time to write one batch durably",
                                       registry=r, buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.in_flight = Gauge("urbanpulse_in_flight_batches", "Batches queued or being written", registry=r)
        self.write_errors = Counter("urbanpulse_batch_write_errors", "Failed batch writes (retried)", registry=r)
        self.kafka_lag = Gauge("urbanpulse_kafka_lag", "Messages behind the partition's high watermark",
                               ["topic", "partition"], registry=r)
        # supervision (connectors/supervisor.py) and the writer's error policy
        self.source_restarts = Counter("urbanpulse_source_restarts", "Times a failed source was restarted "
                                       "(after its back-off)", ["source"], registry=r)
        self.source_up = Gauge("urbanpulse_source_up", "1 while the source runs, 0 while it waits to be "
                               "restarted", ["source"], registry=r)
        self.write_permanent_errors = Counter(
            "urbanpulse_batch_write_permanent_errors", "Batch writes that failed with a permanent error (parked, "
            "retried every ingest.retry_max_s)", ["source"], registry=r)
        self.acks_halted = Gauge("urbanpulse_source_acks_halted", "1 while a source's acknowledgements are held "
                                 "back behind a batch parked after a permanent write error", ["source"], registry=r)
        self.commits_out_of_order = Counter(
            "urbanpulse_commits_out_of_order", "Batches committed before an earlier batch, by why: same_rows (the "
            "same readings twice), table_lock (TimescaleDB creating a chunk), other, timeout", ["why"], registry=r)
        # where latency comes from (issue 14 item 6; benchmarks/README.md reads them)
        self.batch_stage = Histogram(
            "urbanpulse_batch_stage_seconds", "Where a batch's time goes: age (its oldest message waiting for the "
            "batch to form), form (series ids and the analytics hand-off), queue (formed -> a writer takes it), "
            "analysis (the writer waiting for its analysis), commit_wait (in its transaction, waiting for earlier "
            "batches to commit), write (the whole write, commit included), published (oldest message -> its alert "
            "events live), acked (oldest message -> acknowledged)", ["stage"], registry=r, buckets=LATENCY_BUCKETS)
        self.received_to_committed = Histogram(
            "urbanpulse_received_to_committed_seconds", "From a source receiving a batch's oldest message (wall "
            "clock) to the batch's commit", registry=r, buckets=LATENCY_BUCKETS)
        self.kafka_fetch_delay = Histogram(
            "urbanpulse_kafka_fetch_delay_seconds", "From a Kafka record's timestamp (the producer's CreateTime, "
            "or the broker's LogAppendTime) to this service fetching it, for the oldest record of each partition "
            "in a fetch: the broker leg of the latency (clock skew between producer and this host included)",
            registry=r, buckets=LATENCY_BUCKETS)
        self.gc_pauses = GcPauses()
        r.register(self.gc_pauses)
        self.tally: Tally[str] = Tally()
        self.reasons: Tally[str] = Tally()


class AnalyticsCollector:
    """Windows, detector and alert figures read from the live analytics at scrape time, so the
    hot path only bumps plain integers."""

    def __init__(self, analytics: object) -> None:
        self.analytics = analytics

    def describe(self):  # noqa: ANN201 - the families collect() yields, without samples
        """The families :meth:`collect` yields, so that ``/metrics?name[]=...`` finds them (a
        restricted registry knows a collector only by what it describes)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

        for name in ("urbanpulse_series_in_memory", "urbanpulse_series_state_bytes", "urbanpulse_alerts_open",
                     "urbanpulse_sse_subscribers"):
            yield GaugeMetricFamily(name, "")
        for name in ("urbanpulse_series_evicted", "urbanpulse_analytics_failed_batches", "urbanpulse_readings_late",
                     "urbanpulse_alert_events", "urbanpulse_detections_muted", "urbanpulse_webhook_notifications"):
            yield CounterMetricFamily(name, "")
        yield SummaryMetricFamily("urbanpulse_analytics_batch_seconds", "")

    def collect(self):  # noqa: ANN201 - a generator of metric families (prometheus_client protocol)
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

        a = self.analytics
        yield GaugeMetricFamily("urbanpulse_series_in_memory", "Series with window and detector state in memory",
                                value=len(a.slots))
        yield GaugeMetricFamily("urbanpulse_series_state_bytes", "Bytes of in-memory state per series",
                                value=a.nbytes_per_series())
        yield CounterMetricFamily("urbanpulse_series_evicted", "Series evicted from memory (idle or over max_series)",
                                  value=a.evicted)
        yield SummaryMetricFamily("urbanpulse_analytics_batch_seconds",
                                  "From a batch being formed to its windows, scores and alert changes being ready",
                                  count_value=a.analysed_batches, sum_value=a.analysis_seconds)
        yield CounterMetricFamily("urbanpulse_analytics_failed_batches",
                                  "Batches stored without analysis because analysing them raised (see the log)",
                                  value=a.failed_batches)
        late = CounterMetricFamily("urbanpulse_readings_late", "Readings older than the source watermark",
                                   labels=["kind"])
        late.add_metric(["beyond_lateness"], a.late)
        late.add_metric(["within_lateness"], a.late_within_lateness)
        yield late
        alerts = a.alerts
        yield GaugeMetricFamily("urbanpulse_alerts_open", "Open or acknowledged alerts held by this process",
                                value=len(alerts.manager.open_alerts()))
        events = CounterMetricFamily("urbanpulse_alert_events", "Alert changes committed", labels=["kind"])
        for kind, n in sorted(a.events_by_kind.items()):
            events.add_metric([kind], n)
        yield events
        yield CounterMetricFamily("urbanpulse_detections_muted", "Anomalous decisions muted by maintenance windows",
                                  value=alerts.manager.muted_total)
        hooks = CounterMetricFamily("urbanpulse_webhook_notifications", "Webhook notifications by outcome",
                                    labels=["outcome"])
        for outcome in ("delivered", "failed", "dropped", "retries"):
            hooks.add_metric([outcome], alerts.notifier.stats.get(outcome, 0))
        yield hooks
        yield GaugeMetricFamily("urbanpulse_sse_subscribers", "Clients on GET /alerts/stream",
                                value=alerts.hub.subscribers)



class RollupCollector:
    """The deferred rollups' flushes (storage/rollup_buffer.py), read from the buffer at scrape
    time: a flush that fails delays the rollups (nothing is lost), and this is how it shows."""

    def __init__(self, buffer: object) -> None:
        self.buffer = buffer

    def describe(self):  # noqa: ANN201 - see AnalyticsCollector.describe
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        yield CounterMetricFamily("urbanpulse_rollup_flush_failures", "")
        yield GaugeMetricFamily("urbanpulse_rollup_flush_failing_seconds", "")
        yield GaugeMetricFamily("urbanpulse_rollup_buffered_rows", "")

    def collect(self):  # noqa: ANN201 - a generator of metric families (prometheus_client protocol)
        import time

        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        b = self.buffer
        yield CounterMetricFamily("urbanpulse_rollup_flush_failures",
                                  "Deferred rollup flushes that failed (retried; the rows wait in memory)",
                                  value=b.failed_flushes)
        since = b.failing_since
        yield GaugeMetricFamily("urbanpulse_rollup_flush_failing_seconds",
                                "Seconds since rollup flushes started failing in a row (0: the last one worked)",
                                value=0.0 if since is None else max(0.0, time.time() - since))
        yield GaugeMetricFamily("urbanpulse_rollup_buffered_rows", "Rollup partial rows waiting for a flush",
                                value=b.rows)


class GcPauses:
    """``urbanpulse_gc_pause_seconds``: every garbage collection of the process, timed. A full
    collection stops the event loop, so its pauses add directly to the ingest latency.

    The collector's callback only bumps plain integers (a Prometheus metric takes a lock, and a
    collection can start while that very lock is held); the histogram is built at scrape time."""

    BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0)

    def __init__(self) -> None:
        self.counts = [[0] * (len(self.BUCKETS) + 1) for _ in range(3)]
        self.sums = [0.0, 0.0, 0.0]
        self._started = 0.0
        self._watching = False

    def watch(self) -> None:
        """Start timing collections (once; the service calls it at start-up)."""
        if not self._watching:
            self._watching = True
            gc.callbacks.append(self._callback)

    def unwatch(self) -> None:
        """Stop timing collections (the service's stop)."""
        if self._watching:
            self._watching = False
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        g = min(max(int(info.get("generation", 0)), 0), 2)
        self.sums[g] += took
        self.counts[g][bisect.bisect_left(self.BUCKETS, took)] += 1

    def describe(self):  # noqa: ANN201 - the family collect() yields, without samples
        """What :meth:`collect` yields, so that ``/metrics?name[]=...`` finds it."""
        from prometheus_client.core import HistogramMetricFamily

        yield HistogramMetricFamily("urbanpulse_gc_pause_seconds", "", labels=["generation"])

    def collect(self):  # noqa: ANN201 - a generator of metric families (prometheus_client protocol)
        from prometheus_client.core import HistogramMetricFamily

        h = HistogramMetricFamily("urbanpulse_gc_pause_seconds", "Garbage-collector pauses of the service "
                                  "process (the event loop stands still meanwhile)", labels=["generation"])
        for g in range(3):
            cum, buckets = 0, []
            for bound, n in zip([*map(str, self.BUCKETS), "+Inf"], self.counts[g]):
                cum += n
                buckets.append((bound, cum))
            h.add_metric([str(g)], buckets, self.sums[g])
        yield h
