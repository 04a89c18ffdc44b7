"""Prometheus metrics of one service instance (own registry, so tests can run several)."""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
        self.quarantined = Counter("urbanpulse_readings_quarantined", "Messages or readings quarantined",
                                   ["source", "reason"], registry=r)
        self.batch_seconds = Histogram("urbanpulse_batch_write_seconds", "Time to write one batch durably",
                                       registry=r, buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.in_flight = Gauge("urbanpulse_in_flight_batches", "Batches queued or being written", registry=r)
        self.write_errors = Counter("urbanpulse_batch_write_errors", "Failed batch writes (retried)", registry=r)
        self.kafka_lag = Gauge("urbanpulse_kafka_lag", "Messages behind the partition's high watermark",
                               ["topic", "partition"], registry=r)
        self.tally: Tally[str] = Tally()
        self.reasons: Tally[str] = Tally()
