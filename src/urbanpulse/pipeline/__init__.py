"""The path every message takes: decode -> validate -> batch -> durable write -> ack.

Guarantees:
- nothing is acknowledged (MQTT PUBACK, Kafka commit) before the batch holding it is
  committed to the database, readings and quarantine rows alike;
- acknowledgements run in the order batches were formed, so a Kafka commit never covers a
  batch that is still being written;
- at most ``max_in_flight_batches`` batches are queued or being written (a batch frees its slot
  at its commit) and at most ``max_unacked_batches`` are formed and not yet acknowledged: beyond
  either :meth:`Pipeline.submit` waits, which is how sources are slowed down (backpressure);
- a failed write is retried with bounded exponential backoff, never dropped;
- with stream analytics attached, each batch is analysed (windows, detectors, alerts) from when
  it is formed, strictly in batch order, and the resulting alert changes are written in the same
  transaction as the batch's readings: a crash can never store one without the other. The
  analysis overlaps with decoding the next batches; a writer waits for it before writing.
  Batches then also *commit* in the order they were formed (the COPYs still run in parallel):
  after a crash the stored batches are a prefix of the stream, so every redelivered reading is
  newer than what the restarted detectors were warmed with, and none is skipped unscored;
- whatever the format or validation raises on one message costs that message only: it is
  quarantined as ``decode_error`` (the exception in ``detail``, the bytes as received) and its
  neighbours go on (pipeline/decode.py);
- stream analytics failing on a batch (while preparing, analysing or writing its alert changes)
  never holds up its readings: they are stored without alert changes, the failure is counted
  (``urbanpulse_analytics_failed_batches``) and logged, and ingestion continues.

Modules, one job each: core.py (the :class:`Pipeline` the sources call: wiring and intake
counts), decode.py (decode and validate, isolated per message), batcher.py (batching, its timer,
sequence numbers, backpressure), batch_writer.py (durable writes, the retry and park policy, the
series-id lookup), ack_ledger.py (commit order, publishing, ordered acknowledgements),
handoff.py (the typed analytics hand-off), batch.py (the record the others hand each other).
SQL lives in storage/ only.
"""

from urbanpulse.pipeline.batch import Ack
from urbanpulse.pipeline.core import Pipeline
from urbanpulse.pipeline.handoff import BatchAnalytics

__all__ = ["Ack", "BatchAnalytics", "Pipeline"]
