"""A stuck sensor raises its anomaly_score once, not again every few dozen readings while it stays stuck
(issue 11, det28b).

The held-out benchmark thresholds the anomaly_score NAB-style: every high score outside an anomaly's window is a
false positive. Before det28b, flatline's score rose with the run for as long as the value held (run / (run + bar),
its tail ~ bar / run) and the re-arm gate emitted it again whenever its tail had fallen below the gate's memory,
which doubles every `rearm_half_life` readings: a rising score is re-emitted at least every ~51 readings (the gate's
spacing for a *held* score) and each emission, far up the calibrated tail, scored ~1. `detection_families.py --nab`:
1,543 false-positive rows on the on/off family's stuck copies, 858 on the temperature family's, about 30 emissions
per stuck run of 1,000 readings. Now the fusion counts a run's flatline score until it first reaches
`_kernel.FL_FUSE_ONCE` and not after (the decision, and so the alert, stays on for the whole run).

Deterministic (`derandomize=True`), with explicit examples of the shapes that failed before.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings as hsettings, strategies as st

from detect_series import score_one

N = 3000
ONSET = 2000
HIGH = 0.99  # an emitted anomaly_score this high is an alarm at any threshold the benchmark would pick
AFTER = 500  # readings into the stuck stretch after which it is old news


def _temperature(seed: int, level: float, sigma: float, phi: float, swing: float, res: float) -> np.ndarray:
    """A slow machine temperature (AR(1) noise, a daily swing, a resolution) whose value holds at its reading at
    ONSET from there on (a stuck sensor)."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, sigma * np.sqrt(1.0 - phi * phi), N)
    ar = np.zeros(N)
    for k in range(1, N):
        ar[k] = phi * ar[k - 1] + e[k]
    i = np.arange(N, dtype=np.float64)
    x = np.round((level + swing * np.sin(2 * np.pi * i / 1440) + ar) / res) * res
    x[ONSET:] = x[ONSET]
    return x


@hsettings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), level=st.floats(20.0, 90.0), log_sigma=st.floats(np.log10(0.05), np.log10(0.5)),
       phi=st.floats(0.5, 0.95), swing=st.floats(0.0, 3.0), res=st.sampled_from([0.1, 0.01]))
@example(seed=189, level=55.0, log_sigma=-1.0, phi=0.9, swing=1.0, res=0.01)
@example(seed=7, level=30.0, log_sigma=np.log10(0.05), phi=0.6, swing=0.5, res=0.1)
def test_a_stuck_stretch_is_scored_once_and_its_alert_stays_open(seed: int, level: float, log_sigma: float,
                                                                 phi: float, swing: float, res: float) -> None:
    """Where flatline decides a stuck stretch of 1,000 readings: its decision stays on to the end of the stretch,
    and no anomaly_score of 0.99 or more is emitted after the stretch's first AFTER readings (on main: one at
    least every ~51 readings to the end)."""
    x = _temperature(seed, level, 10.0 ** log_sigma, phi, swing, res)
    sc = score_one(x)
    dec = sc.decision[:, sc.names.index("flatline")]
    on = np.flatnonzero(dec[ONSET:])
    if len(on) == 0:  # (not decided: a series whose normal runs are long; what it does emit is checked below too)
        late = np.flatnonzero(sc.anomaly_score[ONSET + AFTER:] >= HIGH)
        assert len(late) == 0, f"high scores over an undecided stuck stretch at {late[:5] + AFTER}"
        return
    first = ONSET + int(on[0])
    assert dec[first:].all(), "the stuck run's flatline decision turned off while the value still held"
    late = np.flatnonzero(sc.anomaly_score[ONSET + AFTER:] >= HIGH)
    assert len(late) == 0, (f"the stuck stretch (decided at +{first - ONSET}) is scored {HIGH}+ again at "
                            f"+{(late[:8] + AFTER).tolist()}")


def _onoff_stuck(seed: int, level: float, noise: float, p_start: float, max_len: int, res: float) -> np.ndarray:
    """An on/off series idle at exactly 0 (a pump, a lane at night: the window's MAD is 0), bursts of 2-`max_len`
    readings at `level` with `noise`, whose value holds at its first active reading from ONSET on (a sensor stuck
    while the pump runs)."""
    rng = np.random.default_rng(seed)
    on = np.zeros(N, bool)
    k = 0
    while k < N:
        if rng.random() < p_start:
            d = int(rng.integers(2, max_len + 1))
            on[k:k + d] = True
            k += d + 1
        else:
            k += 1
    x = np.round(np.where(on, level * (1.0 + noise * rng.normal(size=N)), 0.0) / res) * res
    active = np.flatnonzero(on[ONSET:])
    x[ONSET:] = x[ONSET + int(active[0])] if len(active) else np.round(level / res) * res
    return x


def _check_onoff_stuck(seed: int, log_level: float, noise: float, p_start: float, max_len: int, res: float) -> None:
    level = 10.0 ** log_level
    x = _onoff_stuck(seed, level, noise, p_start, max_len, res * level)
    sc = score_one(x)
    dec = sc.decision[:, sc.names.index("flatline")]
    assert dec[ONSET:ONSET + 200].any(), "the stuck active reading is not decided"
    late = np.flatnonzero(sc.anomaly_score[ONSET + AFTER:] >= HIGH)
    assert len(late) == 0, f"scored {HIGH}+ again at +{(late[:8] + AFTER).tolist()}"


@hsettings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), log_level=st.floats(-1.0, 4.0), noise=st.floats(0.02, 0.1),
       p_start=st.floats(0.03, 0.12), max_len=st.integers(2, 50), res=st.sampled_from([0.01, 0.001]))
@example(seed=2, log_level=float(np.log10(79.0363)), noise=0.0944, p_start=0.1017, max_len=20, res=0.01)
@example(seed=4, log_level=float(np.log10(6.266)), noise=0.0867, p_start=0.0413, max_len=17, res=0.01)
def test_an_on_off_series_stuck_at_an_active_reading_is_a_flatline(seed: int, log_level: float, noise: float,
                                                                   p_start: float, max_len: int,
                                                                   res: float) -> None:
    """Idle at 0, any scale, bursts that vary (noise 2-10 % of the level at a resolution of 1 or 0.1 %) and start
    on 3-12 % of readings: flatline decides within 200 readings of the onset (on main the run never counted, as the
    window's MAD is 0: 119 of 300 of the families' stuck copies missed, e.g. the two examples), and the stuck
    stretch carries no anomaly_score of 0.99+ after its first AFTER readings."""
    _check_onoff_stuck(seed, log_level, noise, p_start, max_len, res)


@pytest.mark.xfail(strict=True, reason="issue 11 gap (benchmarks/README.md, det28b): bursts that hold their value "
                   "(noise below the resolution) are runs as long as the bursts; a stuck value is not decided within "
                   "200 readings where they are long (22 of 300 of the families' stuck copies, resolution 10 %)")
@hsettings(max_examples=1, deadline=None, derandomize=True)
@given(seed=st.just(1), log_level=st.just(-1.0), noise=st.just(0.005), p_start=st.just(0.03), max_len=st.just(50),
       res=st.just(0.01))
def test_bursts_that_hold_their_value_are_the_gap(seed: int, log_level: float, noise: float, p_start: float,
                                                  max_len: int, res: float) -> None:
    """Not yet: bursts of up to 50 readings at noise 0.5 %, resolution 1 %: each burst is one run, so the bar is
    twice the longest and the stuck value is decided later than 200 readings (if at all)."""
    _check_onoff_stuck(seed, log_level, noise, p_start, max_len, res)
