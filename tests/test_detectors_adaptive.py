"""Detectors that adapt to the series (issue 11): small generated series of the shapes that broke
the corpus-tuned defaults, each clean (no alert) and with one injected anomaly (found); and the
threshold settings trap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from detect_series import score_one, spike_pair_scores
from urbanpulse.config import load_settings
from urbanpulse.detect import DetectionSettings, DetectorBank

MIN_US = 60_000_000
T0 = 1_700_000_000_000_000


def _alerts(sc) -> dict[str, list[int]]:
    """Rows where each detector's decision rises (alert onsets), by detector."""
    out = {}
    for j, name in enumerate(sc.names):
        d = sc.decision[:, j]
        on = np.flatnonzero(d & ~np.r_[False, d[:-1]])
        if len(on):
            out[name] = on.tolist()
    return out


# -- the settings trap ---------------------------------------------------------------------------

def test_threshold_limits_without_enabled_turn_the_detector_on(tmp_path: Path) -> None:
    s = DetectionSettings(metrics={"pm2_5": {"threshold": {"high": 250, "clear_high": 200}}})
    bank = DetectorBank(s)
    assert "threshold" in bank.names
    bank.assign(np.zeros(1, np.int64), ["dongsi"], ["pm2_5"])
    sc = bank.score(np.zeros(3, np.int64), T0 + np.arange(3, dtype=np.int64) * MIN_US, np.array([50, 900, 60.0]))
    assert sc.decision[:, sc.names.index("threshold")].tolist() == [False, True, False]
    assert bank.severity(0, "threshold") == "critical"
    # the example config's comment, copied as it is, is a working critical threshold
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detection:\n  metrics:\n    pm2_5: {threshold: {high: 250, clear_high: 200, severity: critical}}\n")
    assert load_settings(cfg).detection.metrics["pm2_5"]["threshold"]["high"] == 250
    assert "threshold" in DetectorBank(load_settings(cfg).detection).names


def test_threshold_explicitly_disabled_with_limits_stays_off() -> None:
    s = DetectionSettings(metrics={"pm2_5": {"threshold": {"enabled": False, "high": 250}}})
    assert "threshold" not in DetectorBank(s).names
    assert "threshold" not in DetectorBank(DetectionSettings()).names
    assert DetectionSettings.model_validate({"defaults": {"threshold": {"low": -5}}}).defaults.threshold.enabled


# -- the four shapes that broke the corpus-tuned defaults -----------------------------------------

def _bursty(n: int, rng: np.random.Generator) -> np.ndarray:
    """On/off: 0 most of the time, bursts of a few readings at ~60."""
    on = np.zeros(n, bool)
    k = 0
    while k < n:
        if rng.random() < 0.03:
            d = int(rng.integers(3, 15))
            on[k:k + d] = True
            k += d
        k += 1
    return np.round(np.where(on, 60 * (1 + 0.05 * rng.normal(size=n)), 0.0), 1)


def _irregular_ts(n: int, rng: np.random.Generator) -> np.ndarray:
    gaps = rng.exponential(60.0, n)
    gaps[rng.random(n) < 0.1] = 2.0  # bursts of quick readings
    return T0 + np.cumsum(np.maximum(gaps, 1.0) * 1e6).astype(np.int64)


def _sine(n: int) -> np.ndarray:
    return np.round(10 + 8 * np.sin(2 * np.pi * np.arange(n) / 144.0), 2)


def _quantised(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.poisson(0.1, n).astype(np.float64)


def _found(sc, onset: int, within: int = 30) -> bool:
    """Some detector's decision rises within `within` readings of the onset."""
    return any(onset <= r <= onset + within for rows in _alerts(sc).values() for r in rows)


N = 3000
ONSET = 2000


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bursty_on_off_series_switching_is_not_a_spike_and_a_real_spike_is(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = _bursty(N, rng)
    # the first few hundred readings teach the long-run spread of its changes (NAB's probation)
    assert {k: v for k, v in _alerts(score_one(x)).items() if max(v) >= 300} == {}
    y = x.copy()
    y[ONSET] = 600.0  # ten times the on level (switching itself is a change of 1x)
    sc = score_one(y)
    assert _found(sc, ONSET, within=0)
    assert all(r >= ONSET for rows in _alerts(sc).values() for r in rows if r >= 300)


@given(st.integers(0, 2**32 - 1))
@hsettings(max_examples=100, deadline=None, derandomize=True)
def test_irregularly_sampled_series_gaps_are_not_silence_but_a_dropout_is(seed: int) -> None:
    """Over generated seeds, not hand-picked ones (seeds 0-2 hid it: before det20 48 of seeds 0-299 raised a
    silence alert on the clean series); more shapes of event-driven sampling: test_detect_silence_irregular.py."""
    rng = np.random.default_rng(seed)
    ts = _irregular_ts(N, rng)
    x = np.round(20 + rng.normal(0, 0.3, N), 2)
    assert "silence" not in _alerts(score_one(x, ts))
    ts2 = ts.copy()
    ts2[ONSET:] += 6 * 3600 * 1_000_000  # six hours without a reading (the mean gap is a minute)
    sc = score_one(x, ts2)
    assert _alerts(sc).get("silence") == [ONSET]


def test_noise_free_sine_raises_nothing_and_a_small_step_is_found() -> None:
    x = _sine(N)
    assert _alerts(score_one(x)) == {}
    y = x.copy()
    y[ONSET:ONSET + 200] += 16.0  # twice the amplitude; NOT found today: a step of the amplitude (spike's
    # scale is floored at 0.1 MAD of the window, ewma's band carries its lag on the ramps)
    assert _found(score_one(y), ONSET)
    z = x.copy()
    z[ONSET:ONSET + 300] = z[ONSET]  # stuck mid-ramp
    assert _found(score_one(z), ONSET, within=40)


def test_noise_free_sine_with_plateaus_is_not_a_flatline() -> None:
    x = np.clip(_sine(6 * N), 4.0, 16.0)  # day/night plateaus of ~50 readings
    al = _alerts(score_one(x))
    # the first plateaus may teach the learned run length; after that nothing
    assert all(r < 1000 for rows in al.values() for r in rows), al


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quantised_mostly_zero_series_clean_is_quiet_and_a_real_level_shift_is_found(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = _quantised(N, rng)
    assert _alerts(score_one(x)) == {}
    y = x.copy()
    y[ONSET:ONSET + 300] = rng.poisson(4.0, 300)  # the rate goes from 0.1 to 4 a reading
    assert _found(score_one(y), ONSET)


# -- re-arm for saturating scores -------------------------------------------------------------------

def test_a_saturating_score_is_not_re_emitted_every_few_readings() -> None:
    """A long excursion far outside the band scores ~1 on every reading; the fused score must give
    one onset, not a new emission whenever the decayed peak memory dips below ~1."""
    rng = np.random.default_rng(0)
    x = 20 + rng.normal(0, 1, N)
    x[ONSET:ONSET + 400] += 1e6
    sc = score_one(x)
    emitted = np.flatnonzero(sc.anomaly_score[ONSET:ONSET + 400] > 0)
    assert emitted.size and emitted[0] <= 1
    assert np.diff(emitted).min(initial=10_000) >= 45  # half_life 100 x log2(1 / (1 - 0.3)) ~ 51


@given(st.floats(0.5, 1.0 - 1e-15), st.integers(0, 10))
@hsettings(max_examples=30, deadline=None)
def test_rearm_spacing_does_not_depend_on_how_close_to_1_the_score_is(level: float, seed: int) -> None:
    """Threshold decision held on: the raw score is exactly 1 every reading (the extreme case)."""
    s = DetectionSettings(defaults={"threshold": {"high": 100.0}, "robust_z": {"enabled": False},
                                    "ewma": {"enabled": False}, "spike": {"enabled": False},
                                    "flatline": {"enabled": False}},
                          fusion={"likelihood_weight": 0.0})
    x = np.full(1000, 150.0)
    x[::7] += seed  # not a flatline either way
    sc = score_one(x, settings=s)
    emitted = np.flatnonzero(sc.anomaly_score > 0)
    assert emitted[0] == 0
    assert np.diff(emitted).min(initial=10_000) >= 45


# -- the calibrated anomaly score ----------------------------------------------------------------------

def _clean_shapes(n: int, rng: np.random.Generator, scale: float, offset: float) -> dict[str, np.ndarray]:
    """Clean series of very different shapes, all multiplied by `scale` and shifted by `offset`."""
    i = np.arange(n)
    raw = {
        "gaussian": rng.normal(0, 1, n),
        "student_t3": rng.standard_t(3, n),
        "sine_noise": 5 * np.sin(2 * np.pi * i / 144) + rng.normal(0, 0.2, n),
        "poisson": rng.poisson(3.0, n).astype(np.float64),
        "random_walk": np.cumsum(rng.normal(0, 0.1, n)),
        "bursty": _bursty(n, rng),
    }
    return {k: offset + scale * v for k, v in raw.items()}


@given(st.integers(0, 1000), st.sampled_from([1e-3, 1.0, 250.0, 1e4]), st.sampled_from([0.0, 20.0, 1e5]))
@hsettings(max_examples=8, deadline=None)
def test_one_threshold_gives_about_the_same_false_alarm_rate_on_clean_series_of_any_scale_and_shape(
        seed: int, scale: float, offset: float) -> None:
    """1 - anomaly_score is a tail probability under the series' own fitted tail: at one threshold
    1 - alpha, a clean series of any scale or shape emits at most ~alpha of its readings there
    (fewer, as the re-arm gate keeps emissions sparse), and the shapes stay within one band."""
    n, skip = 5000, 1000
    series = _clean_shapes(n, np.random.default_rng(seed), scale, offset)
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.arange(len(series)), list(series), ["value"] * len(series))
    slots = np.repeat(np.arange(len(series)), n)
    ts = np.tile(T0 + np.arange(n, dtype=np.int64) * MIN_US, len(series))
    sc = bank.score(slots, ts, np.concatenate(list(series.values())))
    for alpha in (0.01, 0.001):
        rates = {name: float((sc.anomaly_score[sc.slot == k][skip:] >= 1 - alpha).mean())
                 for k, name in enumerate(series)}
        assert max(rates.values()) <= 2 * alpha, (alpha, rates)


@given(st.floats(0.0, 50.0), st.floats(0.0, 50.0), st.floats(0.0, 5000.0), st.floats(0.0, 1.0),
       st.floats(0.0, 10.0), st.floats(0.01, 2.0), st.sampled_from([1.0, 0.8]) | st.floats(0.05, 4.0))
@hsettings(max_examples=200, deadline=None)
def test_tail_probability_is_in_unit_interval_and_never_rises_with_the_statistic(
        q1: float, q2: float, n: float, share: float, excess: float, level: float, stretch: float) -> None:
    """For any stretch of the emitted tail (fusion.detector_tail_stretch), as for the fitted tail itself."""
    from urbanpulse.detect import _kernel
    from urbanpulse.detect.profiles import ProfileTable

    pr = ProfileTable(DetectionSettings(fusion={"tail_level": level})).table[0]
    k = share * n
    lo, hi = sorted((q1, q2))
    for tail in (_kernel._tail, _kernel._tail.py_func):
        p_lo, p_hi = tail(lo, pr, n, k, excess * k, stretch), tail(hi, pr, n, k, excess * k, stretch)
        assert 0.0 <= p_hi <= p_lo <= 1.0
    # continuous at the level, 1 at q = 0
    assert _kernel._tail(0.0, pr, n, k, excess * k, stretch) == 1.0
    below = _kernel._tail(level * (1 - 1e-12), pr, n, k, 0.0, stretch)
    above = _kernel._tail(level * (1 + 1e-12), pr, n, k, 0.0, stretch)
    assert abs(below - above) < 1e-6


@given(st.floats(4.0, 40.0), st.floats(1.05, 3.0), st.integers(0, 50))
@hsettings(max_examples=25, deadline=None)
def test_a_bigger_spike_never_gets_a_lower_anomaly_score(size: float, factor: float, seed: int) -> None:
    """Same history, a spike of `size` sigmas or `factor` times that at the same reading: the larger
    one is emitted whenever the smaller is, with at least its score (higher = more anomalous)."""
    smaller, bigger = spike_pair_scores(score_one, size, factor, seed)
    assert bigger >= smaller
    assert 0.0 <= smaller <= 1.0 and bigger <= 1.0
