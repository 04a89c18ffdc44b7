"""A doubling of an on/off series' active level is found (issue 11, build 2, "the injected anomaly is found").

On an on/off series (a pump, a lane at night, a batch job: idle at 0 or at an offset, bursts at a level) the
bursts rising twice as far above idle is a level shift no detector decided before det25: the window's median
stays at the idle level (robust_z has no scale where MAD = 0), ewma's level shift compares a fast EWMA of every
reading with that median and the long-run spread floors its scale (bursts are the series' normal excursions,
det21), and spike sees a switch twice the usual one against the long-run RMS step (~0.4 of its threshold).
`benchmarks/detection_families.py` over 300 draws of `corpus/families.py`'s on/off family: 223 missed within
200 readings on main. Since det25 ewma also scores the *active level*: the excursion above the window's 5 %
quantile of the readings over half the learned one, a fast EWMA of it against its long-run mean in units of the
excursions' typical spread, where the bursts are one level (the mean over 8 spreads).
Deterministic (`derandomize=True`): the examples are the same in every run.

Not shown here (benchmarks/README.md, det25): draws with a resolution of 10 % of the level or bursts of 2
readings are still missed now and then (9 of 300 in the family sweep); clean on/off series still raise
ewma and flatline alerts now and then (as before det25: 24 of 300).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from test_detectors_adaptive import _bursty
from urbanpulse.detect import DetectionSettings, DetectorBank

T0 = 1_700_000_000_000_000
MIN_US = 60_000_000
N = 3000
ONSET = 2000
WITHIN = 200
PROBATION = 450


def _decisions(x: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.zeros(1, np.int64), ["s0"], ["value"])
    sc = bank.score(np.zeros(len(x), np.int64), T0 + np.arange(len(x), dtype=np.int64) * MIN_US, x)
    return sc.decision, sc.names


def _onoff(rng: np.random.Generator, level: float, offset: float, noise: float, p_start: float, max_len: int,
           res: float) -> tuple[np.ndarray, np.ndarray]:
    """An on/off series (idle at `offset` with the active noise, bursts of 3-`max_len` readings `level` above it)
    and the same series whose bursts rise twice as far from ONSET on."""
    on = np.zeros(N, bool)
    k = 0
    while k < N:
        if rng.random() < p_start:
            d = int(rng.integers(3, max_len + 1))
            on[k:k + d] = True
            k += d + 1
        else:
            k += 1
    eps = rng.normal(size=N)
    amp = np.where(on, level * (1 + noise * eps), 0.0)
    idle = np.where(on, 0.0, level * noise * eps) if offset > 0 else 0.0
    amp2 = amp.copy()
    amp2[ONSET:] *= 2.0
    return np.round((offset + amp + idle) / res) * res, np.round((offset + amp2 + idle) / res) * res


@hsettings(max_examples=120, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), log_level=st.floats(-1.0, 4.0), offset=st.sampled_from([0.0, 0.01, 0.3, 1.0, 2.0]),
       noise=st.floats(0.005, 0.08), p_start=st.floats(0.01, 0.12), max_len=st.integers(3, 50),
       res=st.sampled_from([0.01, 0.001]))
def test_a_doubling_of_the_active_level_is_found(seed: int, log_level: float, offset: float, noise: float,
                                                  p_start: float, max_len: int, res: float) -> None:
    """Any scale, idle at 0 or at an offset of 1-200 % of the level, noise 0.5-8 %, resolution 1 or 0.1 %: some
    detector decides within 200 readings of the first doubled burst."""
    level = 10.0 ** log_level
    clean, doubled = _onoff(np.random.default_rng(seed), level, offset * level, noise, p_start, max_len, res * level)
    first = ONSET + int(np.flatnonzero(doubled[ONSET:] != clean[ONSET:])[0])
    dec, _ = _decisions(doubled)
    assert dec[first:first + WITHIN].any(), "the doubled bursts are not found"


@hsettings(max_examples=100, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
def test_det19_bursty_series_a_doubling_is_found_and_the_clean_series_raises_no_ewma_alert(seed: int) -> None:
    """det19's generator (0 / ~60 on/off, bursts of 3-14): the clean series raises no ewma alert after the probation
    (the active level learns its bursts as normal), and bursts twice as high from ONSET on are found."""
    x = _bursty(N, np.random.default_rng(seed))
    dec, names = _decisions(x)
    ew = dec[:, names.index("ewma")]
    assert not ew[PROBATION:].any(), "a clean on/off series raised an ewma alert"
    y = x.copy()
    y[ONSET:] *= 2.0
    first = ONSET + int(np.flatnonzero(y[ONSET:] > 0)[0])
    dec, _ = _decisions(y)
    assert dec[first:first + WITHIN].any(), "the doubled bursts are not found"
