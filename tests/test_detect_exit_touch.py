"""A touch of the range's edge does not hold back a real exit for a day (issue 11; benchmarks/README.md gecco43).

exit (`_kernel._exit`, exit40 / exit41) scores a sustained exit from reach's range once, and no excursion that begins
within a day (XE_QUIET_US) of the last one's end: a range is the series' own only once it has covered its daily
cycle. On main every excursion restarted that day's clock, also one that only touched the edge: a reading a step
beyond the highest the series had shown, back inside at once. GECCO's one-minute channels do that all the time (a
quantised channel at the top of its range, a flow's new high by a few units), and their real exits within the next
day were never scored (Fm_2_55, Fm_2_62). Now an excursion that never went XE_H bars beyond its anchor leaves the
day's clock as it was before it began (the XE_QUIET readings still count from its end).

The series is test_detect_sustained_exit's machine (5-minute readings, 0.1 resolution), quiet for a day before the
onset, with a touch 200-280 readings (17-23 hours) before the onset: 1-3 readings one or two resolutions above the
highest reading shown before them. The property fails on main (the exit's best anomaly_score within WITHIN readings
stays below HIGH on 29 of 30 random draws, 0-0.996) and holds on the branch.
Deterministic (`derandomize=True`).
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings as hsettings, strategies as st

from detect_series import score_one
from test_detect_sustained_exit import ONSET, WITHIN, machine, quiet_before_onset

# the touch is itself a jump out of reach's range, and reach's tail learns it (a series that leaves its range learns
# that it does), so the exit scores a little lower than without it (test_detect_sustained_exit's 0.9995): 0.99947 on
# the lowest draw found; still far above the pooled NAB thresholds (0.9953 on the development set, 0.9981-0.9993 on
# the families), where main, its exit held back a day by the touch, scores 0-0.996
HIGH = 0.999

_DRAWS = dict(seed=st.integers(0, 2**31 - 1), tau=st.floats(6.0, 24.0), noise=st.floats(0.1, 0.5),
              depth=st.floats(0.3, 0.5), up=st.booleans(), before=st.integers(200, 280),
              length=st.integers(1, 3), steps=st.integers(1, 2))


def touched(exited: np.ndarray, at: int, length: int, steps: int) -> np.ndarray:
    """`exited` with `length` readings from `at` on set `steps` resolutions (0.1) above the highest reading before
    `at`: a touch of the range's top, back inside at once."""
    out = exited.copy()
    out[at:at + length] = np.round(float(exited[:at].max()) + 0.1 * steps, 1)
    return out


@hsettings(max_examples=40, deadline=None, derandomize=True)
@given(**_DRAWS)
def test_a_touch_of_the_range_top_does_not_hold_back_a_sustained_exit(seed: int, tau: float, noise: float,
                                                                     depth: float, up: bool, before: int,
                                                                     length: int, steps: int) -> None:
    """A machine quiet for a day whose reading touched the top of its range 17-23 hours before it cools (or heats)
    to 0.3-0.5 x its range beyond it and stays there gets an anomaly_score of at least HIGH within WITHIN readings of
    the onset, as it does without the touch (test_detect_sustained_exit's first property, at its bar less the
    touch's own share of reach's tail)."""
    clean, exited, ts = machine(seed, tau, noise, depth, up)
    assume(quiet_before_onset(clean))
    at = ONSET - before
    x = touched(exited, at, length, steps)
    best = float(score_one(x, ts).anomaly_score[ONSET:ONSET + WITHIN].max())
    assert best >= HIGH, (f"after a touch {before} readings before the onset the exit's best anomaly_score within "
                          f"{WITHIN} readings is {best:.6f}, below {HIGH} (seed {seed}, tau {tau}, noise {noise}, "
                          f"depth {depth}, up {up}, length {length}, steps {steps})")
