"""The latency benchmark's producer (benchmarks/latency_stream.py) sends what it sent before it was
made cheaper.

Why: the producer was rewritten with numpy and byte templates to take less of the 2 cores it shares
with the service (`lat28` in benchmarks/README.md); figures from a harness whose stream changed would
not compare with the earlier sections. The oracle below is the old loop body of ``latency_worker``,
with the clock readings taken from a schedule instead of ``time.time()``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from latency_stream import LatencyStream  # noqa: E402

METRIC = "temperature"
SPIKE = 65.0
TOPIC = "bench.alerts.x"


def old_messages(series: int, rate: int, t0: float, warmup: float,
                 schedule: list[tuple[float, float]]) -> list[tuple[str, bytes, bytes]]:
    """The producer's loop before `lat28`, verbatim but for the clock: each (now, spike_at) is one pass,
    ``now`` its top-of-loop time and ``spike_at`` the time recorded after handing off a spike."""
    out: list[tuple[str, bytes, bytes]] = []
    step = series / rate
    spikes: dict[str, float] = {}
    sent = 0
    k = 0
    next_spike = t0 + warmup
    spiked: set[int] = set()
    for now, spike_at in schedule:
        target = int(rate * (now - t0))
        msgs = []
        while sent < target:
            s = sent % series
            tick = sent // series
            ts_ms = int((t0 + tick * step) * 1000)
            value = 20.0 + 5.0 * math.sin(2 * math.pi * tick * step / 300.0 + s) + 0.3 * math.sin(tick * 1.7 + s * 3.1)
            msgs.append((s, ts_ms, value))
            sent += 1
        if now >= next_spike and k < series:
            s = k
            k += 1
            spiked.add(s)
            next_spike += 0.5
            ts_ms = int(now * 1000)
            payload = orjson.dumps({"sensor_id": f"lat-{s}", "metric": METRIC, "ts": ts_ms, "value": SPIKE})
            out.append((TOPIC, f"lat-{s}".encode(), payload))
            spikes[f"lat-{s}"] = spike_at
        for s, ts_ms, value in msgs:
            if s in spiked and ts_ms <= int(spikes.get(f"lat-{s}", 0) * 1000):
                continue
            payload = orjson.dumps({"sensor_id": f"lat-{s}", "metric": METRIC, "ts": ts_ms, "value": value})
            out.append((TOPIC, f"lat-{s}".encode(), payload))
    return out


def new_messages(series: int, rate: int, t0: float, warmup: float,
                 schedule: list[tuple[float, float]]) -> list[tuple[str, bytes, bytes]]:
    """The same passes through LatencyStream, in the order latency_worker hands them to the producer."""
    stream = LatencyStream(series, rate, t0, warmup, METRIC, SPIKE)
    out: list[tuple[str, bytes, bytes]] = []
    for now, spike_at in schedule:
        spike = stream.spike_due(now)
        if spike is not None:
            out.append((TOPIC, spike[1], spike[2]))
            stream.spike_sent(spike[0], spike_at)
        keys, payloads = stream.readings_due(now)
        out.extend((TOPIC, key, payload) for key, payload in zip(keys, payloads))
    return out


@st.composite
def runs(draw):  # noqa: ANN001, ANN202
    series = draw(st.integers(1, 300))
    rate = draw(st.integers(1, 20_000))
    t0 = draw(st.floats(1.6e9, 1.9e9, allow_nan=False))
    n = draw(st.integers(1, 25))
    gaps = draw(st.lists(st.floats(0.0, 0.06), min_size=n, max_size=n))
    # a spike's hand-off time trails its pass by 0..1 s, so it holds back 0 to many ticks of its series
    delays = draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))
    warmup = draw(st.floats(0.0, max(0.0, sum(gaps))))  # the first spike lands anywhere in the run
    now, schedule = t0, []
    for gap, delay in zip(gaps, delays):
        now += gap
        schedule.append((now, now + delay))
    return series, rate, t0, warmup, schedule


@settings(max_examples=80, deadline=None)
@given(runs())
def test_stream_is_byte_identical_to_the_old_producer(run) -> None:  # noqa: ANN001
    expected = old_messages(*run)
    assert new_messages(*run) == expected


def test_stream_at_the_benchmark_rate_is_byte_identical() -> None:
    """2,000 series at 250k/s over 1.2 s in 5 ms passes, with spikes every 0.5 s from 0.2 s: the
    shape of the `lat28` runs."""
    t0 = 1_764_661_234.567891
    schedule = [(t0 + 0.005 * i, t0 + 0.005 * i + 0.0007) for i in range(1, 241)]
    expected = old_messages(2000, 250_000, t0, 0.2, schedule)
    assert len(expected) > 290_000
    assert new_messages(2000, 250_000, t0, 0.2, schedule) == expected


def test_spiked_series_readings_up_to_the_spike_are_skipped() -> None:
    """One series, one reading per 0.1 s: a spike handed off at t0+0.35 holds back the readings
    stamped up to then, so the spike is the series' latest reading."""
    t0 = 1_700_000_000.0
    sched = [(t0 + 0.05, t0 + 0.35), (t0 + 0.6, t0 + 0.6)]
    msgs = new_messages(1, 10, t0, 0.0, sched)
    stamps = [orjson.loads(p)["ts"] for _, _, p in msgs]
    values = [orjson.loads(p)["value"] for _, _, p in msgs]
    assert values[0] == SPIKE and stamps[0] == int((t0 + 0.05) * 1000)
    assert stamps[1:] == [int((t0 + 0.4) * 1000)]  # ticks 0-3 held back; 0.6 s after t0 makes 5 due, not 6
