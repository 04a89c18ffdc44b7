"""Silence on event-driven (irregularly sampled) series, over generated ones (issue 11, "what must be
shown"): a gap that exponential inter-arrivals produce now and then is not silence, a source that
really stops is found, by the kernel (on the reading after the gap) and by the live check (while the
series is quiet), which judge the gap the same way.

det19's sweep found the hand-picked seeds hid it: on main before det20, 48 of seeds 0-299 of the
irregular generator raised a silence alert on the clean series (the learned interval, median x
(q90 / median)², came from the last 32 gaps alone; a window of short gaps by chance made a rare long
gap "silent"). Deterministic (`derandomize=True`): the examples are the same in every run.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from urbanpulse.detect import DetectionSettings, DetectorBank

T0 = 1_700_000_000_000_000
N = 3000
ONSET = 2000


def _event_driven_ts(n: int, rng: np.random.Generator, mean_s: float, quick: float) -> np.ndarray:
    """Exponential inter-arrivals of mean `mean_s`, a share `quick` of them replaced by quick bursts."""
    gaps = rng.exponential(mean_s, n)
    gaps[rng.random(n) < quick] = mean_s / 30.0
    return T0 + np.cumsum(np.maximum(gaps, 1.0) * 1e6).astype(np.int64)


def _bank() -> DetectorBank:
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.zeros(1, np.int64), ["s0"], ["value"])
    return bank


def _silence_onsets(bank: DetectorBank, ts: np.ndarray, x: np.ndarray) -> list[int]:
    sc = bank.score(np.zeros(len(x), np.int64), ts, x)
    d = sc.decision[:, sc.names.index("silence")]
    return np.flatnonzero(d & ~np.r_[False, d[:-1]]).tolist()


event_driven = dict(
    seed=st.integers(0, 2**32 - 1),
    mean_s=st.floats(5.0, 3600.0),
    quick=st.floats(0.0, 0.3),
)


@given(**event_driven, stop=st.floats(60.0, 400.0))
@hsettings(max_examples=150, deadline=None, derandomize=True)
def test_exponential_gaps_are_not_silence_and_a_source_that_stops_is(seed: int, mean_s: float, quick: float,
                                                                      stop: float) -> None:
    rng = np.random.default_rng(seed)
    ts = _event_driven_ts(N, rng, mean_s, quick)
    x = np.round(20 + rng.normal(0, 0.3, N), 2)
    assert _silence_onsets(_bank(), ts, x) == []
    ts2 = ts.copy()
    ts2[ONSET:] += np.int64(stop * mean_s * 1e6)  # the source stops for `stop` mean gaps, then resumes
    assert _silence_onsets(_bank(), ts2, x) == [ONSET]


@given(**event_driven)
@hsettings(max_examples=60, deadline=None, derandomize=True)
def test_live_check_waits_out_a_usual_gap_and_reports_a_stopped_source(seed: int, mean_s: float,
                                                                       quick: float) -> None:
    rng = np.random.default_rng(seed)
    ts = _event_driven_ts(N, rng, mean_s, quick)
    bank = _bank()
    bank.score(np.zeros(N, np.int64), ts, np.round(20 + rng.normal(0, 0.3, N), 2))
    last = int(ts[-1])
    usual = bank.check_silence(np.zeros(1, np.int64), np.array([last + int(8 * mean_s * 1e6)]), 0)
    assert usual.slot.size == 0  # 8 mean gaps: e^-8 of an exponential's gaps are longer, not rare enough
    stopped = bank.check_silence(np.zeros(1, np.int64), np.array([last + int(60 * mean_s * 1e6)]), 0)
    assert stopped.slot.tolist() == [0]  # 60 mean gaps: found


@given(seed=st.integers(0, 2**32 - 1), interval_s=st.floats(1.0, 3600.0))
@hsettings(max_examples=40, deadline=None, derandomize=True)
def test_regular_sampling_is_still_silent_after_three_intervals(seed: int, interval_s: float) -> None:
    """A regular series' tail scale is 0: silence stays at `factor` (3) x its interval."""
    rng = np.random.default_rng(seed)
    n = 500
    ts = T0 + (np.arange(n) * interval_s * 1e6).astype(np.int64)
    bank = _bank()
    bank.score(np.zeros(n, np.int64), ts, 20 + rng.normal(0, 0.3, n))
    last = int(ts[-1])
    assert bank.check_silence(np.zeros(1, np.int64), np.array([last + int(2.5 * interval_s * 1e6)]), 0).slot.size == 0
    assert bank.check_silence(np.zeros(1, np.int64), np.array([last + int(3.5 * interval_s * 1e6)]), 0).slot.size == 1
