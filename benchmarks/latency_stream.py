"""The latency phase's messages (benchmarks/analytics.py ``latency_worker``), as a pure function of the
clock readings the producer passes in.

Why: the harness's producer shares the VM's 2 cores with the service it measures; at 250k readings/s
building each message in Python (two sines, a dict through ``orjson.dumps``, an f-string key) took
about half a core. Here a chunk's values are computed with numpy and each payload is assembled from a
per-series byte prefix, giving the same bytes, keys, timestamps, order and spikes as before (checked
against the old code by tests/test_bench_latency_stream.py; the values are bit-identical because
numpy's float64 ``sin`` agrees with libm's, which that test also exercises).
"""

from __future__ import annotations

import math

import numpy as np
import orjson

_NO_SPIKE = np.iinfo(np.int64).min  # a series not spiked: none of its readings is held back


class LatencyStream:
    """Steady readings of ``series`` series at ``rate`` readings/s from ``t0``, and from ``t0 + warmup_s``
    one spike every 0.5 s on the next series; once a series has spiked, its readings stamped at or before
    the spike's hand-off time are skipped (so the spike is the series' latest reading).

    The caller reads the clock: ``spike_due(now)`` then, after producing the spike, ``spike_sent(s, at)``;
    then ``readings_due(now)`` for the steady readings due by ``now``."""

    def __init__(self, series: int, rate: float, t0: float, warmup_s: float, metric: str, spike_value: float) -> None:
        self.series, self.rate, self.t0 = series, rate, t0
        self.step = series / rate  # seconds between two readings of one series
        self.metric, self.spike_value = metric, spike_value
        self.sent = 0  # steady readings generated so far (including any skipped)
        self.spikes_sent = 0
        self.next_spike = t0 + warmup_s
        self.keys = [f"lat-{s}".encode() for s in range(series)]
        # b'{"sensor_id":"lat-7","metric":"temperature","ts":' - orjson's own bytes for the fixed part
        self._prefix = [orjson.dumps({"sensor_id": f"lat-{s}", "metric": metric})[:-1] + b',"ts":'
                        for s in range(series)]
        self._cutoff_ms = np.full(series, _NO_SPIKE, np.int64)

    def spike_due(self, now: float) -> tuple[int, bytes, bytes] | None:
        """The spike to hand off at ``now`` (series index, key, payload), if one is due."""
        if not (now >= self.next_spike and self.spikes_sent < self.series):
            return None
        s = self.spikes_sent
        self.spikes_sent += 1
        self.next_spike += 0.5
        payload = orjson.dumps({"sensor_id": f"lat-{s}", "metric": self.metric, "ts": int(now * 1000),
                                "value": self.spike_value})
        return s, self.keys[s], payload

    def spike_sent(self, s: int, at: float) -> None:
        """Record that series ``s``'s spike was handed off at ``at``: its steady readings up to then are skipped."""
        self._cutoff_ms[s] = int(at * 1000)

    def readings_due(self, now: float) -> tuple[list[bytes], list[bytes]]:
        """(keys, payloads) of the steady readings due by ``now`` and not yet generated, in order."""
        target = int(self.rate * (now - self.t0))
        if target <= self.sent:
            return [], []
        idx = np.arange(self.sent, target, dtype=np.int64)
        self.sent = target
        s = idx % self.series
        tick = idx // self.series
        tstep = tick * self.step
        ts_ms = ((self.t0 + tstep) * 1000).astype(np.int64)  # int() of a positive float: truncation
        keep = ts_ms > self._cutoff_ms[s]
        if not keep.all():
            s, tick, tstep, ts_ms = s[keep], tick[keep], tstep[keep], ts_ms[keep]
        # the same operations in the same order as the scalar formula, element-wise in float64
        value = (20.0 + 5.0 * np.sin(2 * math.pi * tick * self.step / 300.0 + s)
                 + 0.3 * np.sin(tick * 1.7 + s * 3.1))
        values = orjson.dumps(value.tolist())[1:-1].split(b",")  # orjson's float text, as in the dict
        stamps = orjson.dumps(ts_ms.tolist())[1:-1].split(b",")
        prefix, keys = self._prefix, self.keys
        s_list = s.tolist()
        payloads = [b'%b%b,"value":%b}' % (prefix[i], t, v) for i, t, v in zip(s_list, stamps, values)]
        return [keys[i] for i in s_list], payloads
