"""A road speed's single out-of-range reading that comes straight back (a stalled vehicle at 0-20 % of free flow, or a
spurious one at 1.6-2x the limit) gets an anomaly_score a pooled threshold finds, on the reading or the one after
it, and that score changes no decision (issue 11: the held-out proxy's `traffic:spike`; benchmarks/README.md,
spike37).

A road whose jams are deep (the 5-minute speed dips to 30-50 % of free flow at the rush hours) has a range of
readings as wide as most of its free flow, and a detector cabinet that drops its link for up to 2.5 hours makes
the road's largest jump between consecutive readings a jam's whole depth (the first reading after a gap that
spans a rush hour's onset). So a stalled or spurious vehicle is beyond the range by a fraction of its width
(reach33's first path misses it) and reached by a jump the road has nearly made before (traffic36's second path
misses it): on main its anomaly_score is often 0 or ~0.99 (`traffic:spike:15`, 82 on a road capped at 65: 0;
`traffic:spike:78`, 0 after 74 on a road whose readings span 20-99: 0.93774). What the road never did is go out and
come back that far: a jam's onset stays. Reach's third path (`_kernel._reach`, spike37) scores the reading that
returns (inside the range again) after one that left the range from inside it, where the smaller of the jump out
and the jump back is at least 1.5 x the largest such there-and-back the series has made.

The first property fails on main and passes on the branch; the second holds on both (reach is score-only).
Deterministic (`derandomize=True`); `excursion_scores_high` is the body a wide random run calls
(benchmarks/spike37_wide.py).
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings as hsettings, strategies as st

from detect_series import score_one
from road_series import N, STEP_US, road
from urbanpulse.detect import DetectionSettings

ONSET = 2000  # the excursion: the first reading from here on between two ordinary free-flow readings
BAR = 0.9985  # the excursion's or its return's anomaly_score reaches this (main's pooled threshold on the proxy)
# the drawn ranges: the proxy family's (corpus/families.py `traffic`, speed) where the jams are deep, the link drops
# for long runs of slots and the noise is low: a road whose range is wide and whose record jump a jam's onset set
LIMIT = (50.0, 110.0)
CAP = (1.1, 1.15)  # above free flow (a road clipped at its cap most of the time has a window MAD of 0: reach is off)
DEPTH = (0.5, 0.7)
NOISE = (0.03, 0.04)
MISSING = (0.03, 0.12)
RUN = (6, 30)  # the longest run of missed slots (drawn): runs are 1..RUN slots
STALL = (0.0, 0.2)  # x free flow
SPURIOUS = (1.7, 2.0)  # x the limit


def excursion_row(clean: np.ndarray, free: float) -> int:
    """The first row r from ONSET on whose neighbours r - 1 and r + 1 are ordinary free-flow readings (>= 0.95 x
    free flow, inside the range of the readings before r) and arrived on time (no missed slot around r); N if none."""
    lo, hi = clean[:ONSET].min(), clean[:ONSET].max()
    for r in range(ONSET, N - 10):
        a, b = clean[r - 1], clean[r + 1]
        if min(a, b) >= 0.95 * free and max(a, b) <= hi and min(a, b) >= lo:
            return r
    return N


def excursion_scores_high(seed: int, limit: float, cap: float, depth: float, noise: float, tz: int,
                          missing: float, run: int, res: float, stalled: bool, f: float) -> None:
    """The first property's body: one reading at `excursion_row` set to a stalled vehicle's `f` x free flow (0-0.2)
    or a spurious one's `f` x the limit (1.6-2): the larger anomaly_score of it and the reading after is at least
    BAR."""
    clean, ts, free = road(seed, limit, cap, depth, noise, tz, missing, res, run=run)
    r = excursion_row(clean, free)
    assume(r < N - 10)
    gaps = np.diff(ts[r - 1:r + 2]) / STEP_US
    assume(bool(np.all(gaps < 1.5)))
    x = clean.copy()
    x[r] = np.round((f * free if stalled else f * limit) / res) * res
    a = score_one(x, ts).anomaly_score
    best = float(a[r:r + 2].max())
    d = np.abs(np.diff(clean[:r]))
    assert best >= BAR, (f"the {'stalled' if stalled else 'spurious'} reading {x[r]:.1f} between {x[r - 1]:.1f} and "
                         f"{x[r + 1]:.1f} (free flow {free:.1f}, readings {clean[:r].min():.1f}-{clean[:r].max():.1f}, "
                         f"largest jump {d.max():.1f}) scores {a[r]:.6f}, then {a[r + 1]:.6f} < {BAR}")


_DRAWS = dict(seed=st.integers(0, 2**31 - 1), limit=st.floats(*LIMIT), cap=st.floats(*CAP),
              depth=st.floats(*DEPTH), noise=st.floats(*NOISE), tz=st.integers(-8, 2),
              missing=st.floats(*MISSING), run=st.integers(*RUN), res=st.sampled_from([1.0, 0.1]))


def _excursion(stalled: bool, u: float) -> float:
    """The excursion's factor: `u` in [0, 1] across STALL (x free flow) or SPURIOUS (x the limit)."""
    a, b = STALL if stalled else SPURIOUS
    return a + u * (b - a)


@hsettings(max_examples=30, deadline=None, derandomize=True)
@given(**_DRAWS, stalled=st.booleans(), u=st.floats(0.0, 1.0))
def test_a_reading_out_and_back_on_a_road_scores_high(seed: int, limit: float, cap: float, depth: float,
                                                      noise: float, tz: int, missing: float, run: int, res: float,
                                                      stalled: bool, u: float) -> None:
    """A single stalled (0-20 % of free flow) or spurious (1.6-2x the limit) reading between two free-flow readings
    on a road whose jams dip to 30-50 % of free flow and whose link drops for up to 30 slots: the larger
    anomaly_score of it and the reading after >= 0.9985 (main: 0 or ~0.99 on many draws)."""
    excursion_scores_high(seed, limit, cap, depth, noise, tz, missing, run, res, stalled, _excursion(stalled, u))


@hsettings(max_examples=10, deadline=None, derandomize=True)
@given(**_DRAWS, stalled=st.booleans(), u=st.floats(0.0, 1.0))
def test_the_return_score_changes_no_decision(seed: int, limit: float, cap: float, depth: float, noise: float,
                                              tz: int, missing: float, run: int, res: float, stalled: bool,
                                              u: float) -> None:
    """reach on (the default) or off: every detector's score and decision and every alert are the same on the road
    with its excursion; only the anomaly_score may differ."""
    clean, ts, free = road(seed, limit, cap, depth, noise, tz, missing, res, run=run)
    r = excursion_row(clean, free)
    assume(r < N - 10)
    x = clean.copy()
    f = _excursion(stalled, u)
    x[r] = np.round((f * free if stalled else f * limit) / res) * res
    on = score_one(x, ts)
    off = score_one(x, ts, DetectionSettings(defaults={"ewma": {"reach_threshold": 0.0}}))
    assert np.array_equal(on.decision, off.decision)
    assert np.array_equal(on.score, off.score)
    assert np.array_equal(on.alert, off.alert)
