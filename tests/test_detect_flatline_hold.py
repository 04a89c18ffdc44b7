"""A quantised channel's hold no longer than the holds it has shown is not emitted as an anomaly (issue 11, gecco39).

GECCO's water-quality channels are rounded to their sensor's resolution: the value holds one step for hours while
the window's MAD is 0, and flatline neither counts nor (before gecco39) learned those holds. When the window varied
again, a hold of a few dozen readings was judged against the bare `min_readings` bar, and its rising score was
emitted at 0.995-1.0: 29 of GECCO's 310 false-positive rows at the leave-one-dataset-out threshold. flatline now
learns the longest run off the series' floor it has shown, counted or not, and withholds its emission on a run no
longer than that (the decision is unchanged).

The series: long holds on two adjacent steps (MAD 0), a stretch flickering over three steps (the window varies), a
hold on the middle step shorter than every earlier hold, then flicker again. On main 0.995 or more was emitted on
that hold in 171 of 300 random draws; with gecco39 in 0 of 300 (and 0 of 300 at 0.99 where the flicker is left
out of account: the likelihood alone reaches 0.992-0.993 on 7 of them, hence 0.995, the development set's
threshold). Deterministic (`derandomize=True`), with an explicit failing example of main's.
"""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings as hsettings, strategies as st

from detect_series import anomaly_at_inputs, score_one

HIGH = 0.995  # the development set's leave-one-dataset-out threshold is 0.9953


def _quantised_channel(seed: int, base: float, res: float, holds: list[int], flicker: int,
                       hold: int) -> tuple[np.ndarray, int]:
    """Holds of `holds` readings on two adjacent steps, `flicker` readings over three steps, a hold of `hold`
    readings on the middle step, 300 readings of flicker. Returns the series and the hold's first reading."""
    rng = np.random.default_rng(seed)
    parts = [np.full(n, k % 2) for k, n in enumerate(holds)]
    parts += [rng.integers(0, 3, flicker), np.full(hold, 1), rng.integers(0, 3, 300)]
    steps = np.concatenate(parts)
    return np.round((base + steps * res) / res) * res, sum(holds) + flicker


@hsettings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), base=st.floats(5.0, 500.0), res=st.sampled_from([1.0, 0.1, 0.01]),
       holds=st.lists(st.integers(150, 400), min_size=3, max_size=6), flicker=st.integers(200, 400),
       hold_frac=st.floats(0.1, 0.9))
@example(seed=1, base=100.0, res=0.01, holds=[180, 300, 158, 220], flicker=300, hold_frac=0.85)
def test_a_hold_no_longer_than_the_series_has_shown_is_not_emitted(seed: int, base: float, res: float,
                                                                   holds: list[int], flicker: int,
                                                                   hold_frac: float) -> None:
    """No anomaly_score of HIGH or more on the hold after its first reading (flatline's decision may be on)."""
    hold = max(20, int(hold_frac * (min(holds) - 20)))
    x, start = _quantised_channel(seed, base, res, holds, flicker, hold)
    a = anomaly_at_inputs(score_one(x), len(x))
    high = np.flatnonzero(a[start + 1:start + hold] >= HIGH)
    assert len(high) == 0, f"hold of {hold} (holds shown {holds}) emitted {a[start + 1 + high[:5]]} at {high[:5] + 1}"


@hsettings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), base=st.floats(5.0, 500.0), res=st.sampled_from([1.0, 0.1, 0.01]),
       holds=st.lists(st.integers(150, 300), min_size=3, max_size=5), flicker=st.integers(200, 400))
def test_a_stuck_sensor_held_longer_than_any_hold_is_still_emitted(seed: int, base: float, res: float,
                                                                  holds: list[int], flicker: int) -> None:
    """The guard the other way: a hold twice as long as any the series has shown still reaches 0.99 (main: 0.9945 at
    worst over these draws), and flatline decides it. With gecco39 alone nothing was emitted on it (the run's score
    was spent while withheld); flat40 offers it once where the run outgrows the holds, mapped by the prior tail."""
    hold = 2 * max(holds) + 200
    x, start = _quantised_channel(seed, base, res, holds, flicker, hold)
    sc = score_one(x)
    a = anomaly_at_inputs(sc, len(x))
    assert a[start:start + hold].max() >= 0.99
    assert sc.decision[start:start + hold, sc.names.index("flatline")].any()
