"""A real Beijing station slice with faults injected at known hours, for the alerting tests.

The slice is chosen, not hard-coded: the first run of ``hours`` consecutive hours in which the
chosen metrics have no missing values and on which the production detectors, run on the clean
data, decide nothing for those metrics. So whatever alert the service raises afterwards comes
from an injected fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import orjson

from urbanpulse.config import load_settings
from urbanpulse.datasets.beijing import read_station, station_files
from urbanpulse.detect.bank import DetectorBank

SPIKE_METRIC = "temperature"
FLAT_METRIC = "pressure"
GAP_METRIC = "wind_speed"
METRICS = [SPIKE_METRIC, FLAT_METRIC, GAP_METRIC]


@dataclass
class FaultySlice:
    """Readings (per metric: ts_us, value) of one station slice, with what was injected where."""

    sensor_id: str
    ts_ms: np.ndarray
    values: dict[str, np.ndarray]
    keep: dict[str, np.ndarray]  # False where a reading was removed (the gap)
    injected: dict[str, list[int]] = field(default_factory=dict)  # kind -> hour indices

    def payloads(self) -> list[bytes]:
        """One JSON array per station-hour, like a station gateway would publish."""
        out = []
        for i, ts in enumerate(self.ts_ms.tolist()):
            items = [{"sensor_id": self.sensor_id, "metric": m, "ts": ts, "value": float(self.values[m][i])}
                     for m in self.values if self.keep[m][i]]
            out.append(orjson.dumps(items))
        return out

    def readings(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        k = self.keep[metric]
        return self.ts_ms[k].astype(np.int64) * 1000, self.values[metric][k]


def _clean_decisions(sensor: str, ts_ms: np.ndarray, cols: dict[str, np.ndarray]) -> int:
    bank = DetectorBank(load_settings(None).detection)
    bank.ensure_capacity(len(cols))
    bank.assign(np.arange(len(cols)), [sensor] * len(cols), list(cols))
    total = 0
    for k, (m, v) in enumerate(cols.items()):
        scores = bank.score(np.full(len(v), k, np.int32), ts_ms.astype(np.int64) * 1000, v)
        total += int(scores.decision.sum())
    return total


def faulty_slice(hours: int = 720, spikes_from_end: tuple[int, ...] = (5, 2), flat_at: float = 0.45,
                 flat_hours: int = 30, gap_at: float = 0.7, gap_hours: int = 6) -> FaultySlice:
    """A clean slice with: spikes on temperature this many hours before its end (close together, so
    the second updates the open alert, and late, so it is still open when the replay stops), a
    flatline on pressure, a gap in wind speed."""
    st = read_station(station_files()[0])
    ok = np.all([np.isfinite(st.values[m]) for m in METRICS], axis=0)
    start = 24 * 30  # skip the first month: detectors have history from there on in the slice itself
    while start + hours <= len(st):
        if ok[start:start + hours].all():
            cols = {m: st.values[m][start:start + hours].copy() for m in METRICS}
            if _clean_decisions(st.sensor_id, st.ts_ms[start:start + hours], cols) == 0:
                break
        start += 24 * 7
    else:
        raise AssertionError("no clean slice found in the station file")
    ts = st.ts_ms[start:start + hours].copy()
    s = FaultySlice(st.sensor_id, ts, cols, {m: np.ones(hours, bool) for m in METRICS})
    spike_idx = [hours - k for k in spikes_from_end]
    for i in spike_idx:
        s.values[SPIKE_METRIC][i] += 40.0
    f0 = int(flat_at * hours)
    s.values[FLAT_METRIC][f0:f0 + flat_hours] = s.values[FLAT_METRIC][f0]
    g0 = int(gap_at * hours)
    s.keep[GAP_METRIC][g0:g0 + gap_hours] = False
    s.injected = {"spike": spike_idx, "flatline": [f0], "silence": [g0]}
    return s
