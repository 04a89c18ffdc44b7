"""The likelihood's change-of-spread input (`fusion.likelihood_spread_threshold`, issue 11): a series
whose readings start to change more from one to the next -- more noise, a faster period -- while no
single reading is an outlier. Small generated series: the clean one gets no high anomaly_score where
the anomaly would be, the injected one does; and the input never changes a detector's score or
decision."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from detect_series import anomaly_at_inputs, score_one
from test_detect_period_change import period_off_scores
from urbanpulse.detect import DetectionSettings

HIGH = 0.995  # about the development set's pooled NAB threshold (benchmarks/README.md)
N, AT, LENGTH = 4000, 3000, 150


def _score(x: np.ndarray, spread_threshold: float | None = None, trend_threshold: float | None = None,
           period: bool = True):
    """`period` False: with period42's changed-period stage off (the interpreted kernel source, slow), which finds
    a period x 1/3 on its own."""
    fusion: dict[str, float] = {} if spread_threshold is None else {"likelihood_spread_threshold": spread_threshold}
    if trend_threshold is not None:
        fusion["likelihood_trend_threshold"] = trend_threshold
    settings = DetectionSettings(fusion=fusion)
    sc = score_one(x, settings=settings) if period else period_off_scores(x, settings=settings)
    return sc, anomaly_at_inputs(sc, len(x))


def _sine(period: int, amp: float, speed: np.ndarray | None = None) -> np.ndarray:
    """A noise-free sine rounded to 0.01 (the development set's smooth periodic family); `speed`
    (readings' phase steps) changes its period."""
    steps = np.ones(N) if speed is None else speed
    phase = np.concatenate([[0.0], np.cumsum(steps[:-1])])
    return np.round(10 + amp * np.sin(2 * np.pi * phase / period), 2)


@given(st.sampled_from([96, 144, 288]), st.floats(5.0, 20.0))
@hsettings(max_examples=8, deadline=None)
def test_a_sine_whose_period_shortens_is_found_and_the_clean_sine_is_quiet(period: int, amp: float) -> None:
    speed = np.ones(N)
    speed[AT:AT + LENGTH] = 3.0  # three times as fast for a while: every reading moves 3x as far
    clean, changed = _sine(period, amp), _sine(period, amp, speed)
    win = slice(AT, AT + LENGTH)
    assert _score(clean)[1][win].max() < HIGH
    assert _score(changed)[1][win].max() >= HIGH
    # it is this input that finds it: without it (and without the trend input, which a faster period's
    # steeper slopes also move: tests/test_detect_trend.py, and without period42's changed-period stage, which
    # finds it too) the changed period looks like the sine it was
    assert _score(changed, 0.0, 0.0, period=False)[1][win].max() < HIGH


@given(st.sampled_from([96, 144, 288]), st.floats(5.0, 20.0), st.integers(0, 10_000))
@hsettings(max_examples=8, deadline=None)
def test_noise_appearing_on_a_noise_free_sine_is_found(period: int, amp: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    clean = _sine(period, amp)
    noisy = clean.copy()
    noisy[AT:AT + LENGTH] = np.round(noisy[AT:AT + LENGTH] + rng.normal(0, 0.1 * amp, LENGTH), 2)
    win = slice(AT, AT + LENGTH)
    assert _score(clean)[1][win].max() < HIGH
    assert _score(noisy)[1][win].max() >= HIGH


@given(st.integers(0, 10_000), st.floats(0.5, 2.0), st.floats(2.0, 6.0))
@hsettings(max_examples=10, deadline=None)
def test_the_spread_input_never_changes_a_detector_score_or_decision(seed: int, sigma: float, more: float) -> None:
    """Input of the likelihood only: detector scores and decisions are bit-identical with it off, the
    fused score stays in [0, 1], and a noise increase changes the fused score somewhere."""
    rng = np.random.default_rng(seed)
    i = np.arange(2500)
    x = 50 + 0.005 * i + 5 * sigma * np.sin(2 * np.pi * i / 288) + rng.normal(0, sigma, len(i))
    x[1500:1700] += rng.normal(0, more * sigma, 200)
    x[900] += 12 * sigma
    on, on_full = _score(np.round(x, 2))
    off, off_full = _score(np.round(x, 2), 0.0)
    assert np.array_equal(on.score, off.score) and np.array_equal(on.decision, off.decision)
    assert ((on.anomaly_score >= 0) & (on.anomaly_score <= 1)).all()
    assert not np.array_equal(on_full, off_full)
