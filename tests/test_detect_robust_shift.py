"""A level shift of 4-6 noise scales, or the noise scale doubled or more, on a bursty, heavy-tailed server metric
gets an anomaly_score a threshold finds (issue 11: the `server` family; benchmarks/README.md
fam30 mechanism 2, shift33, level34).

A server metric (CPU, latency) is Student-t noise (df 2-5) around a level with normal bursts of 1-6 readings at
1.5-3 x the level. Those bursts inflate ewma's level-shift distance and the likelihood's RMS change, so a shift of a
few noise scales, or a noise x 2-3.5, stays below the clean copy's own bursts: on main the injected window's highest
anomaly_score is often below the level the clean copies' bursts reach (NAB's threshold finds nothing there). The robust
level and spread score (`_kernel._robust_refresh`) measures the rolling median's move and the rolling median
|change|'s growth, scales a burst of a few readings cannot move, where the series is i.i.d.-like noise around a
level (the regime its scales are exact in). It is score-only: the decisions are unchanged.

Both properties fail on main and pass here; deterministic (`derandomize=True`); a wide random run of the same
bodies: benchmarks/README.md, level34.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from detect_series import score_one

N = 3000
ONSET = 2000
PROBATION = 450  # NAB's 15 % of the readings
WINDOW = 200  # readings after the onset a NAB window of this length holds
STEP_US = 300_000_000  # 5 minutes
T0 = 1_767_225_600_000_000  # 2026-01-01 00:00 UTC
DAY_US = 86_400_000_000


def server(seed: int, df: float, noise: float, p_burst: float, shift: float, noise_x: float, *, daily: float = 0.0,
           phase: float = 0.0, decimals: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 5-minute server latency around 100 ms (Student-t noise of `noise` x the level, `df` degrees of freedom,
    bursts of 1-6 readings at 1.5-3 x the level at a rate `p_burst`), clean and with, from ONSET on, the level
    moved by `shift` noise scales and the noise x `noise_x`; and the timestamps. With `daily` the level swings with
    the UTC day (x 1 + `daily` cos, at `phase`: tests/test_detect_resid_shift.py's daily-cycle server). Readings
    rounded to `decimals`."""
    rng = np.random.default_rng(seed)
    t = np.clip(rng.standard_t(df, N), -15.0, 15.0)
    burst = np.ones(N)
    for k in np.flatnonzero(rng.random(N) < p_burst):
        burst[k:k + int(rng.integers(1, 7))] = rng.uniform(1.5, 3.0)
    ts = T0 + np.arange(N, dtype=np.int64) * STEP_US
    hour = (ts % DAY_US) / 3.6e9
    base = 100.0 * (1.0 + daily * np.cos(2 * np.pi * hour / 24.0 + phase))
    scale = 100.0 * noise
    step = np.r_[np.zeros(ONSET), np.ones(N - ONSET)]
    clean = np.round(base * burst + scale * t, decimals)
    injected = np.round((base + shift * scale * step) * burst + scale * (1.0 + (noise_x - 1.0) * step) * t, decimals)
    return clean, injected, ts


def window_scores(seed: int, df: float, noise: float, p_burst: float, shift: float, noise_x: float
                  ) -> tuple[float, float]:
    """The properties' body (the wide run calls it): the injected copy's highest anomaly_score in the window after
    the onset, and the clean copy's highest in the same rows."""
    clean, injected, ts = server(seed, df, noise, p_burst, shift, noise_x)
    a_clean = score_one(clean, ts).anomaly_score
    a_inj = score_one(injected, ts).anomaly_score
    return float(a_inj[ONSET:ONSET + WINDOW].max()), float(a_clean[ONSET:ONSET + WINDOW].max())


SEEDS = st.integers(0, 2**31 - 1)
DF = st.floats(2.0, 5.0)
NOISE = st.floats(0.02, 0.10)
P_BURST = st.floats(0.002, 0.01)
#: a level the clean server copies' normal bursts seldom pass (the pooled NAB thresholds of
#: `detection_families.py --families server,traffic` are 0.998-0.999; a wide run on main: 34 of 60 shifts below it)
SHIFT_LEVEL = 0.996
#: the noise change's window reaches at least this (wide runs of 200 draws, lead34: 57 below it before level34,
#: 0 after; `/tmp/lead34/wide_noise2.py`, benchmarks/README.md "Where issue 11 stands after session 34")
NOISE_LEVEL = 0.993


@hsettings(max_examples=12, deadline=None, derandomize=True)
@given(seed=SEEDS, df=DF, noise=NOISE, p_burst=P_BURST, size=st.floats(4.0, 6.0), sign=st.sampled_from([-1.0, 1.0]))
def test_level_shift_scores_beyond_the_bursts(seed: int, df: float, noise: float, p_burst: float, size: float,
                                              sign: float) -> None:
    """A shift of 4-6 noise scales (either way) scores at least SHIFT_LEVEL in its window: a threshold finds it."""
    inj, _ = window_scores(seed, df, noise, p_burst, sign * size, 1.0)
    assert inj >= SHIFT_LEVEL


@hsettings(max_examples=12, deadline=None, derandomize=True)
@given(seed=SEEDS, df=DF, noise=NOISE, p_burst=P_BURST, noise_x=st.floats(2.5, 3.5))
def test_noise_change_scores_beyond_the_noise_level(seed: int, df: float, noise: float, p_burst: float,
                                                    noise_x: float) -> None:
    """The noise scale x 2.5-3.5 scores at least NOISE_LEVEL in its window.

    Not "above the clean copy there" too: the clean copy's own normal bursts in the same 200 rows can score as
    high (a wide run on this tree: 20 of 200 draws, every one with the injected window at >= 0.995)."""
    inj, _ = window_scores(seed, df, noise, p_burst, 0.0, noise_x)
    assert inj >= NOISE_LEVEL
