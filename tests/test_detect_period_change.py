"""A periodic series whose period changes and stays changed gets a high anomaly_score within a few of its periods,
and that score changes no decision (issue 11's "changed periodicity"; benchmarks/README.md period42).

A pump's duty cycle, a machine's stroke, a server's batch schedule repeat every so many readings, not tied to the
clock day; when the period halves or doubles, the level, range and spread stay what they were, so no value
detector and no score stage of main sees it (`detection_families.py --nab`'s rate:period was missed by every
decision in 299 of 300 draws; its score came from the seasonal model, only because a rate's day is a clock day).
`_kernel._period` counts the series' confirmed crossings of a Schmitt trigger around its slow level, learns their
period in log, and scores a run of PE_RUN periods far outside it once.

The first property fails on main (no stage there scores the changed period: the best anomaly_score within WITHIN
readings stays below HIGH on such draws) and holds with period42; the second checks that the stage is score-only
(every decision and alert the same as with `_period` returning 0, on the interpreted kernel source) and that the
clean copy gets no score of HIGH from it. Deterministic (`derandomize=True`).
"""

from __future__ import annotations


import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from detect_series import assert_score_only, score_one
from urbanpulse.detect import DetectionSettings, Scores

N = 3000
ONSET = 2000
STEP_US = 300_000_000  # 5 minutes
T0 = 1_767_225_600_000_000  # 2026-01-01 00:00 UTC
HIGH = 0.9995  # above the families' pooled NAB thresholds (0.9981-0.9993, benchmarks/README.md exit40)


def periodic(seed: int, period: float, factor: float, noise: float, pulse: bool) -> tuple[np.ndarray, np.ndarray,
                                                                                          np.ndarray]:
    """A 5-minute series repeating a sine (or a raised-cosine pulse, `pulse`) of amplitude 10 on a level of 50 every
    `period` readings (not a divisor of the day), Gaussian noise of `noise` x the amplitude, resolution 0.1: the
    clean copy, and a copy whose period is `factor` x from ONSET on (phase continuous). Returns (clean, changed,
    timestamps)."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(N, dtype=np.int64) * STEP_US
    i = np.arange(N, dtype=np.float64)
    z = noise * 10.0 * rng.normal(size=N)
    phase = rng.uniform(0, 2 * np.pi)

    def series(pos: np.ndarray) -> np.ndarray:
        c = 0.5 - 0.5 * np.cos(pos)
        return np.round(50.0 + 10.0 * (c ** 3 if pulse else c) + z, 1)

    pos = 2 * np.pi * i / period + phase
    pos2 = pos.copy()
    pos2[ONSET:] = pos[ONSET] + (pos[ONSET:] - pos[ONSET]) / factor
    return series(pos), series(pos2), ts


_DRAWS = dict(seed=st.integers(0, 2**31 - 1), period=st.floats(20.0, 80.0), factor=st.sampled_from([0.5, 2.0]),
              noise=st.floats(0.02, 0.07), pulse=st.booleans())


def within(period: float, factor: float) -> int:
    """Readings from the onset by which PE_RUN (3) changed periods that agree have been confirmed: up and down
    crossings each give a period, so 2 new periods and the dwell, one more new period (the first periods after the
    onset mix the old and the new and may not agree), plus one old period (a crossing pending at the onset)."""
    return int(np.ceil(period * (3.0 * factor + 1.0) + 5))


@hsettings(max_examples=30, deadline=None, derandomize=True)
@given(**_DRAWS)
def test_a_changed_period_scores_high_within_a_few_periods(seed: int, period: float, factor: float, noise: float,
                                                           pulse: bool) -> None:
    """A sine or pulse of a period of 20-80 readings that halves or doubles from the onset on gets an anomaly_score
    of at least HIGH within `within` readings of the onset."""
    _, changed, ts = periodic(seed, period, factor, noise, pulse)
    a = score_one(changed, ts).anomaly_score
    end = ONSET + within(period, factor)
    best = float(a[ONSET:end].max())
    assert best >= HIGH, f"the changed period's best anomaly_score within {end - ONSET} readings is {best:.6f}"


def period_off_scores(x: np.ndarray, ts: np.ndarray | None = None,
                      settings: DetectionSettings | None = None) -> Scores:
    """`x` scored as one series by the interpreted kernel with `_period` off: what the other stages find without it
    (tests/test_detect_spread_change.py reads it). drift46's day-over-day stage (`_day_drift`) is off too: a
    changed period departs from yesterday's bins, and it finds that as well."""
    return score_one(x, ts, settings, off_stage=("_period", "_day_drift"))


@hsettings(max_examples=3, deadline=None, derandomize=True)
@given(**_DRAWS)
def test_period_is_score_only_and_silent_on_a_clean_series(seed: int, period: float, factor: float, noise: float,
                                                           pulse: bool) -> None:
    """period on (the compiled kernel) or off (`_period` returning 0): every detector's score and decision and every
    alert are the same; on the clean copy the anomaly_score is the same too (the clean period is never judged
    changed)."""
    clean, changed, ts = periodic(seed, period, factor, noise, pulse)
    assert_score_only(clean, changed, ts, "_period")
