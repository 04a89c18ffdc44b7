"""Second-stage calibration of the emitted anomaly_score (`fusion.recalibrate_level`, issue 11 item 3):
the emitted score mapped through an exponential tail fitted to the series' own emitted scores, so a
series that often emits very high scores has them scaled down and one threshold is the same tail of
emitted scores on every series. It changes scores only: which readings carry a score and every
detector's decision stay as they were."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from detect_series import spike_pair_scores
from urbanpulse.detect import DetectionSettings, DetectorBank

MIN_US = 60_000_000
T0 = 1_700_000_000_000_000
ON = {"recalibrate_level": 0.99, "recalibrate_prior_readings": 5000.0}  # the defaults
OFF = {"recalibrate_level": 0.0}


def _score(series: list[np.ndarray], fusion: dict):
    bank = DetectorBank(DetectionSettings(fusion=fusion))
    k = len(series)
    bank.assign(np.arange(k), [f"s{i}" for i in range(k)], ["value"] * k)
    slots = np.concatenate([np.full(len(x), i, np.int64) for i, x in enumerate(series)])
    ts = np.concatenate([T0 + np.arange(len(x), dtype=np.int64) * MIN_US for x in series])
    return bank.score(slots, ts, np.concatenate(series))


@given(st.integers(0, 10_000), st.lists(st.floats(3.0, 60.0), min_size=1, max_size=6),
       st.sampled_from([0.9, 0.99, 0.999]), st.sampled_from([200.0, 5000.0]))
@hsettings(max_examples=15, deadline=None)
def test_recalibration_changes_scores_only(seed: int, spikes: list[float], level: float, prior: float) -> None:
    """Same readings with the second stage on and off: the same readings carry a score, the same
    decisions, and within a series a score that was higher before is not lower after at the same state."""
    rng = np.random.default_rng(seed)
    x = 10 + rng.normal(0, 1, 4000)
    for j, s in enumerate(spikes):
        x[500 + 550 * j] += s
    off = _score([x], OFF)
    on = _score([x], {"recalibrate_level": level, "recalibrate_prior_readings": prior})
    assert np.array_equal(off.anomaly_score > 0, on.anomaly_score > 0)
    assert np.array_equal(off.decision, on.decision)
    assert ((on.anomaly_score >= 0) & (on.anomaly_score <= 1)).all()


@given(st.floats(4.0, 40.0), st.floats(1.05, 3.0), st.integers(0, 50))
@hsettings(max_examples=15, deadline=None)
def test_a_bigger_spike_never_gets_a_lower_recalibrated_score(size: float, factor: float, seed: int) -> None:
    smaller, bigger = spike_pair_scores(lambda y: _score([y], ON), size, factor, seed)
    assert bigger >= smaller


def test_a_series_that_often_emits_saturated_scores_has_them_scaled_down() -> None:
    """Two series, the same final spike: one quiet, one with a large spike every 60 readings (its
    emitted scores are often high). Off, both final spikes score above 0.99; on, the busy series' spike
    scores lower than the quiet one's: a high score there is less rare."""
    rng = np.random.default_rng(7)
    n = 20_000
    quiet = 10 + rng.normal(0, 1, n)
    busy = 10 + rng.normal(0, 1, n)
    busy[np.arange(300, n - 300, 60)] += 40.0
    for x in (quiet, busy):
        x[n - 100] += 25.0
    off = _score([quiet, busy], OFF)
    on = _score([quiet, busy], ON)
    i_q, i_b = n - 100, 2 * n - 100
    assert off.anomaly_score[i_q] > 0.99 and off.anomaly_score[i_b] > 0.99
    assert on.anomaly_score[i_b] < off.anomaly_score[i_b]
    assert on.anomaly_score[i_b] < on.anomaly_score[i_q]
