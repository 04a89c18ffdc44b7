"""The detectors' emitted tail stretch (`fusion.detector_tail_stretch`, issue 11 item 3; benchmarks/README.md
det18 / det19): above the tail's level the emitted P is rate x exp(-stretch x excess / mean excess), so a
stretch below 1 lets the emitted tail fall more slowly than the fitted one. It changes emitted scores only:
scores stay in [0, 1] and a bigger statistic never scores lower, while which readings carry a score, every
detector's score and every decision are those of the fitted tail (stretch 1). What it does weaken: a robust_z or
ewma decision (fitted P <= alert_tail) carries an emitted score of at least 1 - alert_tail ** stretch, no longer
1 - alert_tail (tests/test_detect_decision_calibrated.py states the latter at the default stretch, 1)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from detect_series import spike_pair_scores
from test_detect_recalibrate import _score
from urbanpulse.detect.settings import DETECTOR_TAIL_STRETCH

N = 3000


def _series(seed: int, kind: str, sizes: list[float]) -> np.ndarray:
    """A generated series of a kind the development set has, with anomalies of the given sizes (sigmas)."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        x = 10 + rng.normal(0, 1, N)
    elif kind == "heavy":
        x = 10 + rng.standard_t(3, N)
    elif kind == "bursty":
        x = np.where(rng.random(N) < 0.1, rng.uniform(5, 9, N), 0.0)
    else:  # "quantised sine"
        x = np.round(20 * np.sin(np.arange(N) * 2 * np.pi / 144) + rng.normal(0, 0.5, N), 1)
    for j, s in enumerate(sizes):
        i = 400 + 500 * j
        if j % 2:
            x[i:i + 60] += s  # a level shift
        else:
            x[i] += s  # a spike
    return x


_kinds = st.sampled_from(["noise", "heavy", "bursty", "quantised sine"])
_sizes = st.lists(st.floats(2.0, 60.0), min_size=1, max_size=5)
_stretch = st.sampled_from([DETECTOR_TAIL_STRETCH, 0.5]) | st.floats(0.1, 3.0)


@given(st.integers(0, 10_000), _kinds, _sizes, _stretch, st.booleans())
@hsettings(max_examples=20, deadline=None)
def test_stretch_changes_emitted_scores_only(seed: int, kind: str, sizes: list[float], stretch: float,
                                             second_stage: bool) -> None:
    """Against stretch 1 (the fitted tail): the same readings carry a score, every detector's score and
    decision is the same, and the emitted scores stay in [0, 1]. With the second stage off the first stage
    is all there is, so a stretch below 1 never raises a score and one above 1 never lowers one."""
    x = _series(seed, kind, sizes)
    rc = {} if second_stage else {"recalibrate_level": 0.0}
    ref = _score([x], {**rc, "detector_tail_stretch": 1.0})
    got = _score([x], {**rc, "detector_tail_stretch": stretch})
    assert np.array_equal(ref.anomaly_score > 0, got.anomaly_score > 0)
    assert np.array_equal(ref.decision, got.decision)
    assert np.array_equal(ref.alert, got.alert)
    assert np.array_equal(ref.score, got.score)
    assert ((got.anomaly_score >= 0) & (got.anomaly_score <= 1)).all()
    if not second_stage:
        if stretch <= 1.0:
            assert (got.anomaly_score <= ref.anomaly_score).all()
        else:
            assert (got.anomaly_score >= ref.anomaly_score).all()


@given(st.floats(4.0, 40.0), st.floats(1.05, 3.0), st.integers(0, 50), _stretch)
@hsettings(max_examples=20, deadline=None)
def test_a_bigger_spike_never_gets_a_lower_stretched_score(size: float, factor: float, seed: int,
                                                           stretch: float) -> None:
    """Monotone in the detector's statistic: same history, a spike of `size` sigmas or `factor` times that
    at the same reading; the larger one scores at least as high under any stretch."""
    smaller, bigger = spike_pair_scores(lambda y: _score([y], {"detector_tail_stretch": stretch}), size, factor, seed)
    assert bigger >= smaller
    assert 0.0 <= smaller <= 1.0 and bigger <= 1.0



@given(st.integers(0, 10_000), _kinds, _sizes, st.floats(0.1, 1.0), st.sampled_from([0.001, 0.003, 0.01, 0.03]))
@hsettings(max_examples=20, deadline=None)
def test_a_decision_carries_a_score_of_at_least_one_minus_alert_tail_to_the_stretch(
        seed: int, kind: str, sizes: list[float], stretch: float, alert_tail: float) -> None:
    """The stretched tail is rate^(1 - s) x P^s <= P^s (rate <= 1), so where robust_z or ewma decides (P <= alert_tail)
    the first-stage emitted score is at least 1 - alert_tail^s (second stage off: it rescales per series)."""
    x = _series(seed, kind, sizes)
    sc = _score([x], {"recalibrate_level": 0.0, "detector_tail_stretch": stretch, "alert_tail": alert_tail})
    cols = [sc.names.index(n) for n in ("robust_z", "ewma") if n in sc.names]
    emitted = sc.decision[:, cols].any(axis=1) & (sc.anomaly_score > 0)
    assert (sc.anomaly_score[emitted] >= 1.0 - alert_tail ** stretch - 1e-12).all()
