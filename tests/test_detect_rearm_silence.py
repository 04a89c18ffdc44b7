"""Silence's emission does not hide a value anomaly that follows it (issue 11; rearm31).

Silence judges the gap before a reading, the value detectors the reading's value; until rearm31 both went through
one re-arm memory of the recent emitted peak, so after silence emitted ~1.0 on a real silent gap (a source dead
for half a day) a large spike a few dozen readings later was not emitted at all (benchmarks/README.md fam30
`traffic:spike:7`, gap31 "Left to do"). Each now has its own memory and the emitted score is the larger of the
two emissions. Here, over generated regular series (noise, level, interval drawn): the gap is decided by silence
and emitted, and the spike `k` readings later (5-60) is emitted at >= 0.99 and decided by the spike detector;
the clean copy (no gap, no spike) raises no alert. Deterministic (`derandomize=True`); the wide run (random
seeds) is in benchmarks/README.md, rearm31.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from urbanpulse.detect import DetectionSettings, DetectorBank

T0 = 1_700_000_000_000_000
N = 2000
ONSET = 1500
DEAD_S = 12 * 3600.0  # half a day without a reading


def _score(ts: np.ndarray, x: np.ndarray):  # noqa: ANN202
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.zeros(1, np.int64), ["s0"], ["value"])
    return bank.score(np.zeros(len(x), np.int64), ts, x)


case = dict(
    seed=st.integers(0, 2**32 - 1),
    level=st.floats(-50.0, 500.0),
    noise=st.floats(0.05, 5.0),
    interval_s=st.floats(60.0, 900.0),  # 1-15 minutes
    k=st.integers(5, 60),
    up=st.booleans(),
)


@given(**case)
@hsettings(max_examples=60, deadline=None, derandomize=True)
def test_a_spike_after_a_real_silent_gap_is_emitted(seed: int, level: float, noise: float, interval_s: float,
                                                   k: int, up: bool) -> None:
    rng = np.random.default_rng(seed)
    step_us = np.int64(round(interval_s * 1e6))
    ts = T0 + np.arange(N, dtype=np.int64) * step_us
    x = level + rng.normal(0.0, noise, N)
    clean = _score(ts, x)
    assert not clean.alert[200:].any(), np.flatnonzero(clean.alert[200:])[:5] + 200
    ts2 = ts.copy()
    ts2[ONSET:] += np.int64(max(DEAD_S, 100 * interval_s) * 1e6)  # far beyond any gap the series has shown
    x2 = x.copy()
    spike = ONSET + k
    x2[spike] = level + (60.0 if up else -40.0) * noise
    sc = _score(ts2, x2)
    assert sc.decision[ONSET, sc.names.index("silence")]
    assert sc.anomaly_score[ONSET] >= 0.99
    assert sc.decision[spike, sc.names.index("spike")]
    assert sc.anomaly_score[spike] >= 0.99, (sc.anomaly_score[spike], sc.score[spike])
