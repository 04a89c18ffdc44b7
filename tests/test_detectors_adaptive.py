"""Detectors that adapt to the series (issue 11): small generated series of the shapes that broke
the corpus-tuned defaults, each clean (no alert) and with one injected anomaly (found); and the
threshold settings trap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, assume, example, given, settings as hsettings, strategies as st

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
#
# Each shape is a hypothesis property over its parameters, claimed only over a range where a wide random run
# (prop29: 3,000+ examples per property, not derandomized, several seeds; benchmarks/README.md) found no
# failing draw: a derandomized property that fails on a few draws of its range passes or fails with the draws
# a run makes (det28d's bursty property broke CI so). What fails outside the ranges is a strict xfail that runs
# only its explicit failing @examples (no generated draws), so that no draw decides its outcome.

def _bursty(n: int, rng: np.random.Generator, level: float = 60.0, start_p: float = 0.03,
            length: tuple[int, int] = (3, 15), noise: float = 0.05, decimals: int = 1) -> np.ndarray:
    """On/off: 0 most of the time, bursts of `length` readings (drawn in [lo, hi)) starting with
    probability `start_p` a reading, at `level` with relative `noise`, rounded to `decimals` places of 60
    (the defaults: bursts of a few readings at ~60, rounded to 0.1; other test modules use them)."""
    on = np.zeros(n, bool)
    k = 0
    while k < n:
        if rng.random() < start_p:
            d = int(rng.integers(*length))
            on[k:k + d] = True
            k += d
        k += 1
    scale = level / 60.0
    return np.round(np.where(on, 60.0 * (1 + noise * rng.normal(size=n)), 0.0), decimals) * scale


def _irregular_ts(n: int, rng: np.random.Generator) -> np.ndarray:
    gaps = rng.exponential(60.0, n)
    gaps[rng.random(n) < 0.1] = 2.0  # bursts of quick readings
    return T0 + np.cumsum(np.maximum(gaps, 1.0) * 1e6).astype(np.int64)


def _sine(n: int, period: float = 144.0, amplitude: float = 8.0, offset: float = 10.0,
          decimals: int = 2) -> np.ndarray:
    """A noise-free sine, rounded to `decimals` places of amplitude / 8 (the defaults: 10 + 8 sin over 144
    readings, rounded to 0.01)."""
    scale = amplitude / 8.0
    return np.round((offset + amplitude * np.sin(2 * np.pi * np.arange(n) / period)) / scale, decimals) * scale


def _quantised(n: int, rng: np.random.Generator, rate: float = 0.1, unit: float = 1.0) -> np.ndarray:
    """Counts of a Poisson process of `rate` a reading, in `unit`s (mostly zero below a rate of ~0.7)."""
    return rng.poisson(rate, n) * unit


def _found(sc, onset: int, within: int = 30) -> bool:
    """Some detector's decision rises within `within` readings of the onset."""
    return any(onset <= r <= onset + within for rows in _alerts(sc).values() for r in rows)


N = 3000
ONSET = 2000
PROBATION = 300  # the first readings teach each detector the series' usual changes (NAB's probation: 10 % here)
SEEDS = st.integers(0, 2**32 - 1)
PROPERTY_EXAMPLES = 100  # derandomized draws per property (the wide runs are what protect CI)


def _after(sc, start: int) -> dict[str, list[int]]:
    """Alert onsets at or after row `start`, by detector."""
    return {k: [r for r in v if r >= start] for k, v in _alerts(sc).items() if max(v) >= start}


def _log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Scales from `lo` to `hi`, each decade as likely."""
    return st.floats(np.log10(lo), np.log10(hi)).map(lambda e: float(10.0 ** e))


# the ranges each property claims (prop29's wide runs: 0 failing draws in each; README for the counts)
BURSTY = dict(level=_log_uniform(0.1, 1e4), start_p=st.floats(0.05, 0.1), lo=st.integers(4, 10),
              longest=st.integers(10, 30), noise=st.floats(0.015, 0.025), decimals=st.integers(1, 2), seed=SEEDS)
SINES = dict(period=st.floats(24.0, 280.0), amplitude=_log_uniform(1e-3, 1e4),
             offset=st.sampled_from([0.0, 1.0, -1.0]) | st.floats(-1e3, 1e3), decimals=st.integers(1, 3))
SINE_STEP = dict(SINES, step=st.floats(2.5, 10.0) | st.floats(-10.0, -2.5))
SINE_STUCK = dict(SINES, period=st.floats(24.0, 180.0), rising=st.booleans(), phase=st.floats(-0.08, 0.08))
SINE_PLATEAU = dict(SINES, plateau=st.floats(2.0, 48.0))
QUANTISED = dict(rate=st.floats(0.02, 0.35), unit=st.just(1.0) | _log_uniform(1e-3, 1e3), factor=st.floats(2.0, 5.0),
                 length=st.integers(100, 500), seed=SEEDS)


IDLE_BEFORE = 15  # readings without a burst before the injected one (prop29: the misses follow a switch closely)


def _idle_reading(x: np.ndarray, start: int) -> int | None:
    """The first reading from `start` on that is idle, as are the IDLE_BEFORE readings before it (None: none)."""
    idle = np.convolve((x != 0).astype(np.int64), np.ones(IDLE_BEFORE + 1, np.int64))[:len(x)] == 0
    at = np.flatnonzero(idle[start:len(x) - 100])
    return start + int(at[0]) if len(at) else None


def check_bursty(level: float, start_p: float, lo: int, longest: int, noise: float, decimals: int,
                 seed: int, at_onset: bool = False) -> None:
    """No alert after the probation; a reading of ten times the level in an idle stretch (IDLE_BEFORE readings
    after the last burst; at reading ONSET wherever it falls with `at_onset`) found at once, nothing else
    alerting."""
    x = _bursty(N, np.random.default_rng(seed), level, start_p, (lo, lo + longest), noise, decimals)
    assert _after(score_one(x), PROBATION) == {}, "clean"
    at = ONSET if at_onset else _idle_reading(x, ONSET)
    assume(at is not None)  # (no idle stretch in the last third: a few draws of the densest bursts)
    y = x.copy()
    y[at] = 10 * level  # ten times the on level (switching itself is a change of 1x)
    sc = score_one(y)
    assert _found(sc, at, within=0), "missed"
    assert all(r >= at for rows in _after(sc, PROBATION).values() for r in rows), "other"


def check_sine_step(period: float, amplitude: float, offset: float, decimals: int, step: float) -> None:
    """Clean: no alert after the probation; a step of `step` amplitudes for 200 readings found within 30."""
    x = _sine(N, period, amplitude, offset * amplitude, decimals)
    assert _after(score_one(x), PROBATION) == {}, "clean"
    y = x.copy()
    y[ONSET:ONSET + 200] += step * amplitude  # NOT found: a step of the amplitude (spike's scale is floored at
    # 0.1 MAD of the window, ewma's band carries its lag on the ramps)
    assert _found(score_one(y), ONSET), "missed"


def check_sine_stuck(period: float, amplitude: float, offset: float, decimals: int, rising: bool,
                     phase: float) -> None:
    """Stuck for 300 readings within `phase` periods of a zero crossing: found within 40."""
    x = _sine(N, period, amplitude, offset * amplitude, decimals)
    at = int(np.ceil((np.ceil(ONSET / period) + (0.0 if rising else 0.5) + phase) * period))  # on a ramp
    z = x.copy()
    z[at:at + 300] = z[at]  # stuck mid-ramp
    assert _found(score_one(z), at, within=40), "missed"


def check_sine_plateaus(period: float, plateau: float, amplitude: float, offset: float, decimals: int) -> None:
    """Clipped to plateaus of `plateau` readings at top and bottom: nothing after the first 1,000 readings."""
    x = _sine(6 * N, period, amplitude, offset * amplitude, decimals)
    top = np.cos(np.pi * plateau / period) * amplitude  # the sine is above `top` for `plateau` readings
    x = np.clip(x, offset * amplitude - top, offset * amplitude + top)
    # the first plateaus may teach the learned run length; after that nothing
    assert _after(score_one(x), 1000) == {}, "clean"


def check_quantised(rate: float, unit: float, factor: float, length: int, seed: int) -> None:
    """No alert at all; a rate of `factor` x (at least ten times the rate and two a reading) found within 30."""
    rng = np.random.default_rng(seed)
    x = _quantised(N, rng, rate, unit)
    assert _alerts(score_one(x)) == {}, "clean"
    y = x.copy()
    shifted = max(10 * rate, 2.0) * factor  # at least ten times the rate and two a reading
    y[ONSET:ONSET + length] = _quantised(length, rng, shifted, unit)
    assert _found(score_one(y), ONSET), "missed"




def _explicit_only(test):
    """A strict xfail runs its failing @example(s) only: no generated draw decides its outcome."""
    return hsettings(phases=[Phase.explicit], deadline=None)(test)


@given(**BURSTY)
@hsettings(max_examples=PROPERTY_EXAMPLES, deadline=None, derandomize=True)
@example(level=60.0, start_p=0.03, lo=3, longest=12, noise=0.05, decimals=1, seed=0)  # the former hand-picked
@example(level=60.0, start_p=0.03, lo=3, longest=12, noise=0.05, decimals=1, seed=1)  # cases (5 % noise, bursts
@example(level=60.0, start_p=0.03, lo=3, longest=12, noise=0.05, decimals=1, seed=2)  # of 3-14: fixed cases only)
def test_bursty_on_off_series_switching_is_not_a_spike_and_a_real_spike_is(
        level: float, start_p: float, lo: int, longest: int, noise: float, decimals: int, seed: int) -> None:
    """Bursts at any level (0.1-10,000) starting at 5-10 % of readings, 4-10 to 13-39 readings long, with
    1.5-2.5 % noise and a resolution of 0.17 % or 0.017 % of the level: no alert after the probation; a reading
    of ten times the level while idle (IDLE_BEFORE readings after the last burst) is found at once and nothing
    else alerts. Right after a switch, noisier, one-value, rare or short bursts: the strict xfails below.
    (More on/off shapes: test_detect_onoff_*.py.)"""
    check_bursty(level, start_p, lo, longest, noise, decimals, seed)


@pytest.mark.xfail(strict=True, reason="a tenfold reading 1-3 readings after a switch, where spike's floor (the "
                   "long-run RMS step) has just learned the switch: it can score just under 0.5 in spike and be "
                   "missed (prop29's wide runs with the reading at 2000: 4 distinct draws in 16,000, and det28d's "
                   "seed 64, each 1-3 readings after a switch; the property places the reading while idle)")
@given(**BURSTY)
@example(level=1.0, start_p=0.03, lo=4, longest=10, noise=0.01782445982475295, decimals=2, seed=116)
@example(level=1.0421904971162983, start_p=0.03, lo=5, longest=10, noise=0.015, decimals=1, seed=27)
@example(level=491.12799548764355, start_p=0.08985023823547435, lo=4, longest=16, noise=0.02005919189160149,
         decimals=1, seed=250)
@example(level=1.4891473314111239, start_p=0.06454362608424398, lo=9, longest=15, noise=0.02270944881722122,
         decimals=2, seed=24413137)
@example(level=1.0, start_p=0.05, lo=5, longest=8, noise=0.03125, decimals=1, seed=64)
@_explicit_only
def test_bursty_on_off_series_spike_right_after_a_switch_is_found(
        level: float, start_p: float, lo: int, longest: int, noise: float, decimals: int, seed: int) -> None:
    check_bursty(level, start_p, lo, longest, noise, decimals, seed, at_onset=True)


@pytest.mark.xfail(strict=True, reason="bursts with 2.5-10 % noise: ewma alerts on the clean series (gone with "
                   "shift_threshold off; det28d: 28 of 500 draws at 4.5-10 %; prop29: 1 of 3,000 at 1.5-3 %, "
                   "at 2.9 %)")
@given(**dict(BURSTY, noise=st.floats(0.025, 0.1)))
@example(level=17.4908, start_p=0.0408, lo=4, longest=24, noise=0.093, decimals=1, seed=3802224684)
@example(level=1.0695278577210867, start_p=0.05718669600749661, lo=4, longest=10, noise=0.02919210101318706,
         decimals=2, seed=10)
@example(level=1.0, start_p=0.03590824229569303, lo=3, longest=30, noise=0.03125, decimals=1, seed=30)
@_explicit_only
def test_bursty_on_off_series_with_noisier_bursts_is_quiet(
        level: float, start_p: float, lo: int, longest: int, noise: float, decimals: int, seed: int) -> None:
    check_bursty(level, start_p, lo, longest, noise, decimals, seed)


@pytest.mark.xfail(strict=True, reason="bursts that hold one value (noise below a resolution of 1.7 % of the level): "
                   "the window's changes are all switches, so a tenfold reading scores 0.36 in spike (a 20-fold "
                   "0.53) and is missed; coarse bursts also raise flatline alerts (test_detect_onoff_family.py, det24)")
@given(**dict(BURSTY, noise=st.floats(0.0, 0.01), decimals=st.just(0)))
@example(level=0.48878050892714053, start_p=0.0985374936345959, lo=5, longest=8, noise=0.0002747147602664146,
         decimals=0, seed=1571285993)
@_explicit_only
def test_bursty_on_off_series_whose_bursts_hold_one_value_gets_its_spike_found(
        level: float, start_p: float, lo: int, longest: int, noise: float, decimals: int, seed: int) -> None:
    check_bursty(level, start_p, lo, longest, noise, decimals, seed)


@pytest.mark.xfail(strict=True, reason="bursts starting at 1-5 % of readings: few switches in the probation, and a "
                   "switch soon after it is a spike (the RMS step has not seen enough bursts; det24's early spike; "
                   "prop29: one burst in the probation at 3 %)")
@given(**dict(BURSTY, start_p=st.floats(0.01, 0.05)))
@example(level=1.2727, start_p=0.013, lo=5, longest=23, noise=0.0223, decimals=2, seed=2815245709)
@example(level=1.023292992280754, start_p=0.03, lo=8, longest=20, noise=0.022451197103019883, decimals=1, seed=28853)
@_explicit_only
def test_bursty_on_off_series_with_rare_bursts_is_quiet_after_the_probation(
        level: float, start_p: float, lo: int, longest: int, noise: float, decimals: int, seed: int) -> None:
    check_bursty(level, start_p, lo, longest, noise, decimals, seed)


@pytest.mark.xfail(strict=True, reason="bursts of 2-10 readings: the tenfold reading is missed (the window's median "
                   "change is a switch; docs/detection.md, det25/det27a)")
@given(**dict(BURSTY, lo=st.integers(2, 3), longest=st.integers(3, 8)))
@example(level=1832.646, start_p=0.0224, lo=2, longest=6, noise=0.0255, decimals=2, seed=2162500540)
@_explicit_only
def test_bursty_on_off_series_with_short_bursts_gets_its_spike_found(
        level: float, start_p: float, lo: int, longest: int, noise: float, decimals: int, seed: int) -> None:
    check_bursty(level, start_p, lo, longest, noise, decimals, seed)


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


@given(**SINE_STEP)
@hsettings(max_examples=PROPERTY_EXAMPLES, deadline=None, derandomize=True)
@example(period=144.0, amplitude=8.0, offset=1.25, decimals=2, step=2.0)  # the former hand-picked sine (a fixed
# case: a step of exactly 2 amplitudes is below the generated range, see the fast-sine xfail)
def test_noise_free_sine_raises_nothing_and_a_small_step_is_found(
        period: float, amplitude: float, offset: float, decimals: int, step: float) -> None:
    """A sine of period 24-280 readings (under the probation), amplitude 0.001-10,000, offset -1,000-1,000
    amplitudes, rounded to 1-3 decimals of amplitude / 8: no alert after the probation; a step of 2.5-10
    amplitudes either way is found within 30 readings. Slower sines and a step of exactly 2: the strict xfails."""
    check_sine_step(period, amplitude, offset, decimals, step)


@pytest.mark.xfail(strict=True, reason="a sine slower than the probation: flatline alerts on its first trough "
                   "(det28d: 3 of 500, periods 395-475)")
@given(**dict(SINE_STEP, period=st.floats(300.0, 500.0)))
@example(period=394.60425522888613, amplitude=0.08809248967196083, offset=-2.6670, decimals=1, step=2.0)
@_explicit_only
def test_noise_free_sine_slower_than_the_probation_raises_nothing_after_it(
        period: float, amplitude: float, offset: float, decimals: int, step: float) -> None:
    check_sine_step(period, amplitude, offset, decimals, step)


@pytest.mark.xfail(strict=True, reason="a step of exactly 2 amplitudes on the steepest ramp of a fast sine (period 43): "
                   "spike scores 0.46 (the ramp's own changes set its scale), ewma finds it after 31 readings (det28d)")
@given(**dict(SINE_STEP, period=st.floats(24.0, 60.0), step=st.just(2.0)))
@example(step=2.0, period=43.0, amplitude=1.0, offset=0.0, decimals=1)
@_explicit_only
def test_noise_free_fast_sine_step_of_twice_the_amplitude_is_found_within_30(
        period: float, amplitude: float, offset: float, decimals: int, step: float) -> None:
    check_sine_step(period, amplitude, offset, decimals, step)


@given(**SINE_STUCK)
@hsettings(max_examples=PROPERTY_EXAMPLES, deadline=None, derandomize=True)
@example(period=144.0, amplitude=8.0, offset=1.25, decimals=2, rising=True, phase=-0.11)  # ~ the former case
def test_noise_free_sine_stuck_mid_ramp_is_found(period: float, amplitude: float, offset: float, decimals: int,
                                                 rising: bool, phase: float) -> None:
    """Stuck within 0.08 periods of a zero crossing (rising or falling), periods 24-180: found within 40
    readings. Slower sines: the strict xfail below."""
    check_sine_stuck(period, amplitude, offset, decimals, rising, phase)


@pytest.mark.xfail(strict=True, reason="periods of 200 and over: stuck on a falling ramp, the stuck value becomes the "
                   "window's floor (its bottom 5 %), where flatline does not count runs; found late or not at all "
                   "(det28d: 11 of 500 at 200-500; prop29: 1 of 3,000 at 24-200, at exactly 200)")
@given(**dict(SINE_STUCK, period=st.floats(200.0, 500.0)))
@example(period=209.5700862128465, amplitude=3.4454962516820147, offset=-1.0, decimals=2, rising=False,
         phase=0.052921584931846746)
@example(period=200.0, amplitude=0.7793338654077485, offset=0.0, decimals=2, rising=False, phase=0.07438536163910146)
@_explicit_only
def test_noise_free_slow_sine_stuck_mid_ramp_is_found(period: float, amplitude: float, offset: float,
                                                      decimals: int, rising: bool, phase: float) -> None:
    check_sine_stuck(period, amplitude, offset, decimals, rising, phase)


@given(**SINE_PLATEAU)
@hsettings(max_examples=PROPERTY_EXAMPLES, deadline=None, derandomize=True)
@example(period=144.0, plateau=33.0, amplitude=8.0, offset=1.25, decimals=2)  # the former case (clip at 0.75)
def test_noise_free_sine_with_plateaus_is_not_a_flatline(period: float, plateau: float, amplitude: float,
                                                         offset: float, decimals: int) -> None:
    """Day/night plateaus of 2-48 readings (at most a third of the period) on a sine of period 24-280, any
    amplitude, offset and rounding: no alert after the first 1,000 readings. Longer plateaus: the xfail below."""
    assume(plateau <= period / 3)
    check_sine_plateaus(period, plateau, amplitude, offset, decimals)


@pytest.mark.xfail(strict=True, reason="plateaus longer than ~half the robust window (128): the window's median "
                   "stays on the plateau while the ramp leaves it, and ewma's level-shift statistic (fast EWMA "
                   "against that median) alerts (det28d: 99 of 500, all with plateaus over 40)")
@given(**dict(SINE_PLATEAU, period=st.floats(250.0, 500.0), plateau=st.floats(64.0, 160.0)))
@example(period=322.0, plateau=77.0, amplitude=71.67370302959247, offset=0.0, decimals=3)
@_explicit_only
def test_noise_free_sine_with_long_plateaus_is_not_a_level_shift(period: float, plateau: float, amplitude: float,
                                                                 offset: float, decimals: int) -> None:
    check_sine_plateaus(period, plateau, amplitude, offset, decimals)


@given(**QUANTISED)
@hsettings(max_examples=PROPERTY_EXAMPLES, deadline=None, derandomize=True)
@example(rate=0.1, unit=1.0, factor=2.0, length=300, seed=0)  # the former hand-picked cases: 0.1 -> 4 a reading
@example(rate=0.1, unit=1.0, factor=2.0, length=300, seed=1)
@example(rate=0.1, unit=1.0, factor=2.0, length=300, seed=2)
def test_quantised_mostly_zero_series_clean_is_quiet_and_a_real_level_shift_is_found(
        rate: float, unit: float, factor: float, length: int, seed: int) -> None:
    """Poisson counts of 0.02-0.35 a reading in integer or scaled units (0.001-1,000): no alert at all; a rate
    of 2-5 x (at least ten times that and two a reading), for 100-500 readings, is found within 30. What fails:
    the strict xfails below (shifts of 1-2 x that bound found late, a rare clean alert at 0.45 a reading)."""
    check_quantised(rate, unit, factor, length, seed)


@pytest.mark.xfail(strict=True, reason="shifts of 1-2 x the bound (0.5 -> 5, 0.25 -> 3.75, 0.2 -> 2.3 a reading) "
                   "found by ewma's level-shift statistic only after 41-67 readings (det28d's wide runs)")
@given(**dict(QUANTISED, factor=st.floats(1.0, 2.0)))
@example(rate=0.5, unit=1.0, factor=1.0, length=100, seed=179)
@example(rate=0.25, unit=1.0, factor=1.5, length=100, seed=249)
@example(rate=0.2006227040726491, unit=1.0, factor=2.3028252229108217 / 2.0, length=299, seed=3192792611)
@_explicit_only
def test_quantised_mostly_zero_series_small_shift_is_found_within_30(rate: float, unit: float, factor: float,
                                                                     length: int, seed: int) -> None:
    check_quantised(rate, unit, factor, length, seed)


@pytest.mark.xfail(strict=True, reason="a clean 0.45-a-reading series alerting on ewma's envelope statistic "
                   "(det28d: 1 of 2,500 draws at 0.02-0.5)")
@given(**dict(QUANTISED, rate=st.floats(0.35, 0.5)))
@example(rate=0.44586250393575366, unit=1.0, factor=14.225011216418824 / 4.4586250393575366, length=117,
         seed=155362616)
@_explicit_only
def test_quantised_mostly_zero_series_at_half_a_reading_is_quiet(rate: float, unit: float, factor: float,
                                                                 length: int, seed: int) -> None:
    check_quantised(rate, unit, factor, length, seed)


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
