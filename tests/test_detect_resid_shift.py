"""A level shift of 4-6 noise scales on a server metric with a daily cycle gets an anomaly_score a threshold finds
(issue 11: the `server` family's daily-swing half; benchmarks/README.md, level36 and resid35).

level34's robust level score counts only where the series is i.i.d.-like noise around a level: sqrt(2) MAD / median
|change| below 1.25. A server whose load swings with the day (x 1 +- 0.15-0.3) has 1.5-4 there (the swing fills
robust_z's window), so its level shift of a few noise scales is left to ewma and the likelihood, whose scales the
swing and the bursts inflate: on main the shifted copy's highest anomaly_score in the 200 readings after the onset
often stays below the level the clean server copies' bursts reach. level36 scores the same statistic on the series
less its daily profile (`_kernel._resid_regime`, `_resid_level`: a 2 h level of that residual against its slow
memory, in units of a typical distance learned off a scored distance), where the residual's regime statistic is
below 1.6 (what the profile leaves wanders with the profile's errors: 1.3-2 on such servers). It is score-only: the
decisions are unchanged.

Fails on main, passes here; deterministic (`derandomize=True`); a wide random run of the same body (200 fresh draws,
`benchmarks/level36_wide_run.py 200 11 out.json 0.002`): benchmarks/README.md, level36.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from detect_series import score_one
from test_detect_robust_shift import ONSET, WINDOW, server


def daily_server(seed: int, df: float, noise: float, daily: float, phase: float, p_burst: float, shift: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 5-minute server latency around 100 ms whose level swings with the UTC day (x 1 + `daily` cos), Student-t
    noise of `noise` x 100 (`df` degrees of freedom), bursts of 1-6 readings at 1.5-3 x the level at a rate
    `p_burst`; clean and with, from ONSET on, the level moved by `shift` noise scales; and the timestamps."""
    return server(seed, df, noise, p_burst, shift, 1.0, daily=daily, phase=phase, decimals=2)


def window_scores(seed: int, df: float, noise: float, daily: float, phase: float, p_burst: float, shift: float
                  ) -> tuple[float, float]:
    """The property's body (the wide run calls it): the injected copy's highest anomaly_score in the window after
    the onset, and the clean copy's highest in the same rows."""
    clean, injected, ts = daily_server(seed, df, noise, daily, phase, p_burst, shift)
    a_clean = score_one(clean, ts).anomaly_score
    a_inj = score_one(injected, ts).anomaly_score
    return float(a_inj[ONSET:ONSET + WINDOW].max()), float(a_clean[ONSET:ONSET + WINDOW].max())


SEEDS = st.integers(0, 2**31 - 1)
DF = st.floats(3.0, 5.0)
NOISE = st.floats(0.02, 0.05)
DAILY = st.floats(0.15, 0.30)  # a swing of 3-15 noise scales each way: level34's regime gate shuts it out
PHASE = st.floats(0.0, 2 * np.pi)
P_BURST = st.floats(0.0, 0.002)  # up to one burst start in 500 readings (more: the profile learns them)
#: a level main misses on 8 % of such draws (wide run of 200 with up to 0.2 % burst starts, the same body: main 16
#: below it, level36 0; below 0.995: main 76, level36 12); the clean server copies' bursts reach 0.999-0.9997, so
#: level36 raises the shifted copies toward them, it does not pass them all. 40 derandomised examples: main fails
#: one of them (0.98995), 12 all pass on main
SHIFT_LEVEL = 0.99


@hsettings(max_examples=40, deadline=None, derandomize=True)
@given(seed=SEEDS, df=DF, noise=NOISE, daily=DAILY, phase=PHASE, p_burst=P_BURST, size=st.floats(4.0, 6.0),
       sign=st.sampled_from([-1.0, 1.0]))
def test_daily_server_level_shift_scores_beyond_the_bursts(seed: int, df: float, noise: float, daily: float,
                                                           phase: float, p_burst: float, size: float,
                                                           sign: float) -> None:
    """A shift of 4-6 noise scales (either way) on a daily-cycle server scores at least SHIFT_LEVEL in its window."""
    inj, _ = window_scores(seed, df, noise, daily, phase, p_burst, sign * size)
    assert inj >= SHIFT_LEVEL
