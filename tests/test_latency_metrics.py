"""The latency instrumentation on /metrics (issue 14 item 6): where a batch's time goes, and the
garbage collector's pauses. Counts and order only; durations are measured in benchmarks/."""

from __future__ import annotations

import gc
import time

import pytest
from prometheus_client import generate_latest

from test_pipeline import make_pipeline, message_batch
from urbanpulse.metrics import IngestMetrics

pytestmark = pytest.mark.integration


def sample(metrics: IngestMetrics, name: str, **labels: str) -> float:
    """One sample's value from the registry's exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith(name + ("{" + want if want else " ")) or (not want and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_every_batch_is_timed_through_each_stage(fresh_db: str) -> None:
    pipeline, pool = await make_pipeline(fresh_db, batch_max_readings=100, writers=2, max_in_flight_batches=4)
    try:
        for k in range(5):
            batch = message_batch(k * 100, 100)
            batch.received_ns = time.time_ns()
            await pipeline.submit(batch)
        await pipeline.drain()
    finally:
        await pipeline.stop()
        await pool.close()
    m = pipeline.metrics
    for stage in ("age", "form", "queue", "write", "acked"):
        assert sample(m, "urbanpulse_batch_stage_seconds_count", stage=stage) == 5, stage
    assert sample(m, "urbanpulse_received_to_committed_seconds_count") == 5
    # without analytics nothing waits for an analysis or an earlier commit
    assert sample(m, "urbanpulse_batch_stage_seconds_count", stage="analysis") == 0


def test_gc_pauses_are_counted_per_generation_while_watched() -> None:
    m = IngestMetrics()
    m.gc_pauses.watch()
    try:
        before = sample(m, "urbanpulse_gc_pause_seconds_count", generation="2")
        gc.collect()
        gc.collect()
        assert sample(m, "urbanpulse_gc_pause_seconds_count", generation="2") == before + 2
        assert sample(m, "urbanpulse_gc_pause_seconds_bucket", generation="2", le="+Inf") == before + 2
        assert sample(m, "urbanpulse_gc_pause_seconds_sum", generation="2") > 0
    finally:
        m.gc_pauses.unwatch()
    gc.collect()
    assert sample(m, "urbanpulse_gc_pause_seconds_count", generation="2") == before + 2  # no longer watched
