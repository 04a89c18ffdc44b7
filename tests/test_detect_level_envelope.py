"""A sustained level change beyond anything the series has done is decided (issue 11: "the injected anomaly is
found", on the held-out-like shapes of benchmarks/README.md, det25 / det27b).

A mostly-zero count whose rate goes up five- to tenfold or more (requests to a rarely used endpoint, vehicles on a
night lane) is a level change that is not an outlier of one reading:
the window's median and MAD move with it, the EWMA band widens with it, and ewma's level shift, floored by the
long-run spread (det21: an on/off series' bursts are its normal excursions), stays below its threshold; on main
`benchmarks/detection_families.py` finds 18 of 300 sparse rate changes (ewma) and 97 of 300 rate level shifts.
The envelope stage (`_kernel._envelope`, counted in ewma's score) decides where the fast level leaves the range it
has shown (a decaying high and low, widening slowly) by `envelope_threshold` widths. The property fails on main
(no detector decides in some example) and passes with it; the clean copy of each example raises no alert after
NAB's probation (15 % of the readings). Deterministic (`derandomize=True`). (A daily rate doubling its level is
found in 0-missed random draws at x2.2-2.5 but Hypothesis finds misses at the edges of that domain: not a
property here; benchmarks/README.md, det27b.)
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

import sys
from pathlib import Path

from detect_series import score_one
from urbanpulse.detect import DetectionSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from corpus.families import _poisson_from_uniform  # noqa: E402  (the families' sparse counts, same inversion)

N = 3000
ONSET = 2000
WITHIN = 200
PROBATION = 450


def _sparse(seed: int, rate: float, unit: float, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """A quantised mostly-zero count (Poisson of `rate` a reading, x `unit`) and the same count whose rate is
    `factor` x from ONSET on."""
    u = np.random.default_rng(seed).random(N)
    lam = np.full(N, rate)
    changed = lam.copy()
    changed[ONSET:] *= factor
    return _poisson_from_uniform(u, lam) * unit, _poisson_from_uniform(u, changed) * unit


def _check(clean: np.ndarray, changed: np.ndarray) -> None:
    sc = score_one(clean)
    late = np.flatnonzero(sc.alert[PROBATION:]) + PROBATION
    assert late.size == 0, f"the clean copy alerts at rows {late[:5]} ({sc.names})"
    dec = score_one(changed).alert
    assert dec[ONSET:ONSET + WITHIN].any(), "the level change is not found within 200 readings"


@hsettings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), rate=st.floats(0.15, 0.3), unit=st.sampled_from([1.0, 0.5, 0.2, 0.1]),
       factor=st.floats(12.0, 20.0))
def test_a_sparse_counts_rate_change_is_found(seed: int, rate: float, unit: float, factor: float) -> None:
    """A Poisson count of 0.15-0.3 a reading in units of 0.1-1 whose rate goes up 12-20x: found within 200
    readings; the clean count raises no alert. (The family's 5-10x at 0.02-0.3 a reading is found in about half
    of the draws: benchmarks/README.md, det27b.)"""
    _check(*_sparse(seed, rate, unit, factor))


def test_the_envelope_off_changes_no_score_where_it_never_decides() -> None:
    """envelope_threshold 0 turns the stage off; on a clean Gaussian series (no level change) the stage never
    reaches its decision level, so every score and decision is the same with it on and off (it scores nothing
    below its decision level, so it moves no fused score or likelihood input there)."""
    x = 20 + np.random.default_rng(7).normal(0, 1, N)
    on = score_one(x)
    off = score_one(x, settings=DetectionSettings(defaults={"ewma": {"envelope_threshold": 0.0}}))
    assert np.array_equal(on.score, off.score)
    assert np.array_equal(on.anomaly_score, off.anomaly_score)
    assert np.array_equal(on.decision, off.decision)
