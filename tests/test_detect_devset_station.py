"""How the development report scores a multichannel station (benchmarks/detection_devset.py).

GECCO and 3W label a station, not a channel, so the report scores each station as one file whose
score at a time comes from its channels' calibrated anomaly_scores. `combine_station` turns the
largest of k channels' scores into a station score with the Sidak correction, so that a threshold
means the same tail for a station of any size. Property tests: it keeps a station's order of its
own readings, leaves a single channel as it is, never raises a score, stays in [0, 1], and is
calibrated (k independent channels with uniform tails give a station tail that is uniform too).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import detection_devset as devset  # noqa: E402

unit_scores = st.lists(st.one_of(st.just(0.0), st.just(1.0), st.sampled_from([0.99, 0.995, 0.9999]),
                                 st.floats(0.0, 1.0, allow_nan=False)), min_size=1, max_size=100)


@settings(max_examples=200, deadline=None)
@given(unit_scores, st.integers(1, 12))
def test_station_score_keeps_order_bounds_and_never_raises_a_score(raw: list[float], k: int) -> None:
    best = np.asarray(raw)
    out = devset.combine_station(best, k)
    assert out.shape == best.shape
    assert ((out >= 0.0) & (out <= 1.0)).all()
    assert (out <= best).all()  # more channels: more chances, so the same largest score is less rare
    order = np.argsort(best, kind="stable")
    assert (np.diff(out[order]) >= 0).all()  # monotone: the station's ranking of its readings is kept
    if k == 1:
        np.testing.assert_array_equal(out, best)
    np.testing.assert_array_equal(devset.combine_station(best, k, "max"), best)


@settings(max_examples=100, deadline=None)
@given(st.floats(1e-9, 0.5), st.integers(2, 12))
def test_station_tail_is_the_sidak_tail(p: float, k: int) -> None:
    out = devset.combine_station(np.array([1.0 - p]), k)
    # the chance that at least one of k channels is this extreme, ~k p for small p
    assert 1.0 - out[0] == pytest.approx(1.0 - (1.0 - p) ** k, rel=1e-6)
    assert 1.0 - out[0] <= k * p * (1 + 1e-9)


def test_station_score_is_calibrated_for_independent_channels() -> None:
    # k channels whose scores are calibrated (tail uniform on [0, 1]): the station's tail is uniform too,
    # so P(station score >= 1 - a) = a whatever k is; the uncorrected maximum crosses k times as often
    rng = np.random.default_rng(11)
    for k in (3, 9):
        tails = rng.random((200_000, k))
        best = 1.0 - tails.min(axis=1)
        station = devset.combine_station(best, k)
        for a in (0.01, 0.005, 0.001):
            assert abs((station >= 1.0 - a).mean() - a) < 0.25 * a
            assert (best >= 1.0 - a).mean() > 0.8 * k * a


def test_unknown_combine_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="sidak"):
        devset.combine_station(np.array([0.5]), 3, "mean")
