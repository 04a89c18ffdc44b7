"""A doubling of an on/off series' active level is found (issue 11, build 2, "the injected anomaly is found").

On an on/off series (a pump, a lane at night, a batch job: idle at 0 or at an offset, bursts at a level) the
bursts rising twice as far above idle is a level shift that, on main before det27a, no detector decided: the
window's median stays at the idle level (robust_z has no scale where MAD = 0, and where the idle is noisy its
bursts are outliers the calibrated tail vetoes), ewma's level shift compares a fast EWMA of every reading with that
median and the long-run spread floors its scale (bursts are the series' normal excursions, det21), and spike sees
a switch twice the usual one against the long-run RMS step (scores 0.4-0.5). ewma now follows the bursts' active
level (`_kernel._active_level`, det27a: det25's v14 in two state columns): `benchmarks/detection_families.py` over
300 draws of `corpus/families.py`'s on/off family, a doubling missed within 200 readings 225 -> 23. The idle-at-0
property passes (it failed before); the two wider ones are still the gap (`xfail(strict=True)`: short noisy bursts,
whose window's median change is a switch, so the change-scale gate stays shut; a resolution of 10 % of the level;
noisy idle offsets; det19's generator: 2 of 300 seeds). Deterministic (`derandomize=True`): the examples are the same in every run.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings as hsettings, strategies as st

from detect_series import score_one
from test_detectors_adaptive import _bursty

N = 3000
ONSET = 2000
WITHIN = 200
PROBATION = 450
GAP = pytest.mark.xfail(strict=True, reason="issue 11 gap (benchmarks/README.md, det25 / det27a / det27b): a doubling of the "
                        "active level of an on/off series with short noisy bursts, a coarse resolution or a noisy idle "
                        "offset is not decided by any detector")


def _decisions(x: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    sc = score_one(x)
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


# A failing example is given explicitly (found by a sweep of 300 numpy-drawn parameter sets on main at eaf807a:
# 5 missed), so the strict xfail does not hang on which examples Hypothesis draws: its derandomized draws depend
# on the constants of the modules a run has imported, i.e. on the test selection (det27b found this one passing
# beside the other detection tests and failing alone)
@GAP
@hsettings(max_examples=120, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), log_level=st.floats(-1.0, 4.0),
       offset=st.sampled_from([0.0, 0.01, 0.3, 1.0, 2.0]), noise=st.floats(0.005, 0.08),
       p_start=st.floats(0.01, 0.12), max_len=st.integers(3, 50), res=st.sampled_from([0.01, 0.001]))
@example(seed=1396231712, log_level=1.1514936597391667, offset=0.01, noise=0.07745465605880526,
         p_start=0.07184550264513027, max_len=39, res=0.01)
def test_a_doubling_of_the_active_level_is_found(seed: int, log_level: float, offset: float, noise: float,
                                                  p_start: float, max_len: int, res: float) -> None:
    """Any scale, idle at 0 or at an offset of 1-200 % of the level, noise 0.5-8 %, resolution 1 or 0.1 %: some
    detector decides within 200 readings of the first doubled burst."""
    level = 10.0 ** log_level
    clean, doubled = _onoff(np.random.default_rng(seed), level, offset * level, noise, p_start, max_len, res * level)
    first = ONSET + int(np.flatnonzero(doubled[ONSET:] != clean[ONSET:])[0])
    dec, _ = _decisions(doubled)
    assert dec[first:first + WITHIN].any(), "the doubled bursts are not found"


@GAP
@hsettings(max_examples=100, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
@example(seed=142)  # missed (with 150, of seeds 0-299 on main at eaf807a): the xfail does not hang on the draws
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


@hsettings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), log_level=st.floats(-1.0, 4.0), noise=st.floats(0.01, 0.03),
       p_start=st.floats(0.02, 0.08), max_len=st.integers(10, 30))
def test_a_doubling_of_the_active_level_of_an_idle_at_zero_series_is_found(seed: int, log_level: float,
                                                                          noise: float, p_start: float,
                                                                          max_len: int) -> None:
    """Idle at exactly 0, any scale, noise 1-3 %, bursts of 3 to 10-30 readings at a resolution of 0.1 % of the level:
    some detector decides within 200 readings of the first doubled burst, and the clean series raises no ewma alert
    after the probation. Failed before det27a's active level (benchmarks/README.md, det27a)."""
    level = 10.0 ** log_level
    clean, doubled = _onoff(np.random.default_rng(seed), level, 0.0, noise, p_start, max_len, 0.001 * level)
    dec, names = _decisions(clean)
    assert not dec[PROBATION:, names.index("ewma")].any(), "a clean on/off series raised an ewma alert"
    first = ONSET + int(np.flatnonzero(doubled[ONSET:] != clean[ONSET:])[0])
    dec, _ = _decisions(doubled)
    assert dec[first:first + WITHIN].any(), "the doubled bursts are not found"
