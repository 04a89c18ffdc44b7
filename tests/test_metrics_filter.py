"""``GET /metrics?name[]=...`` renders only the named samples (api/routes/metrics.py, Prometheus'
own ``name[]`` filter): a poller that wants one counter many times a second must not pay for
rendering them all. The filtered text must hold exactly the samples of those names that the full
exposition holds, with the same labels and values."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from prometheus_client.parser import text_string_to_metric_families

from urbanpulse.api.routes.metrics import render
from urbanpulse.metrics import IngestMetrics


def _metrics() -> IngestMetrics:
    m = IngestMetrics()
    for source in ("kafka", "mqtt"):
        m.stored.labels(source).inc(7)
        m.received.labels(source).inc(9)
        m.messages.labels(source).inc(3)
    for stage in ("age", "write", "commit_wait"):
        m.batch_stage.labels(stage).observe(0.05)
    m.kafka_lag.labels("t", "0").set(4)
    return m


def _samples(text: bytes) -> set[tuple[str, tuple, float]]:
    return {(s.name, tuple(sorted(s.labels.items())), s.value)
            for fam in text_string_to_metric_families(text.decode()) for s in fam.samples}


METRICS = _metrics()
FULL = _samples(render(METRICS.registry))
SAMPLE_NAMES = sorted({s[0] for s in FULL})


def test_without_names_every_metric_is_rendered() -> None:
    assert len(SAMPLE_NAMES) > 10 and "urbanpulse_readings_stored_total" in SAMPLE_NAMES


def test_the_stored_counter_alone() -> None:
    only = _samples(render(METRICS.registry, ["urbanpulse_readings_stored_total"]))
    assert only == {("urbanpulse_readings_stored_total", (("source", s),), 7.0) for s in ("kafka", "mqtt")}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(SAMPLE_NAMES), min_size=1, max_size=6))
def test_any_names_give_exactly_their_samples_as_in_the_full_text(names: list[str]) -> None:
    assert _samples(render(METRICS.registry, names)) == {s for s in FULL if s[0] in names}


def test_the_analytics_collectors_metrics_can_be_asked_for_by_name() -> None:
    """A collector is found by name only through what it describes: describe() must name every
    family collect() yields (a stand-in analytics object supplies the figures)."""
    from collections import Counter
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    from urbanpulse.metrics import AnalyticsCollector

    alerts = SimpleNamespace(manager=SimpleNamespace(open_alerts=lambda: [1, 2], muted_total=3),
                             notifier=SimpleNamespace(stats={"delivered": 4}), hub=SimpleNamespace(subscribers=1))
    analytics = SimpleNamespace(slots=[0] * 5, nbytes_per_series=lambda: 100, evicted=2, analysed_batches=6,
                                analysis_seconds=0.5, failed_batches=0, late=1, late_within_lateness=2,
                                alerts=alerts, events_by_kind=Counter({"opened": 2}))
    registry = CollectorRegistry()
    registry.register(AnalyticsCollector(analytics))
    full = _samples(render(registry))
    assert len({s[0] for s in full}) >= 11
    for name in {s[0] for s in full}:
        assert _samples(render(registry, [name])) == {s for s in full if s[0] == name}, name
