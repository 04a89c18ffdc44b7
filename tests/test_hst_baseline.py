"""The HalfSpaceTrees baseline's calibration and features (benchmarks/corpus/hst.py).

River itself is not in the project venv (it pins an older numpy), so these check the parts
that decide what NAB's scorer sees: the per-stream conformal calibration is causal, keeps HST's
order, stays in [0, 1) and leaves HST's warm-up at 0; the feature rows are what the docstring
says. Property tests over generated score streams.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from corpus import hst  # noqa: E402

# HST's scores: 0 (warm-up, missing readings) or a value in (0, 1), often repeated
scores = st.lists(st.one_of(st.just(0.0), st.sampled_from([0.5, 0.9, 0.99]),
                            st.floats(1e-6, 1.0 - 1e-6, allow_nan=False)), min_size=1, max_size=200)


@settings(max_examples=200, deadline=None)
@given(scores)
def test_conformal_is_causal_bounded_and_keeps_the_warm_up_at_zero(raw: list[float]) -> None:
    s = np.asarray(raw)
    c = hst.conformal(s)
    assert c.shape == s.shape
    assert ((c >= 0.0) & (c < 1.0)).all()
    assert (c[s == 0.0] == 0.0).all()
    for k in range(1, len(s) + 1):  # a prefix of the stream is scored the same: no look-ahead
        np.testing.assert_array_equal(hst.conformal(s[:k]), c[:k])


@settings(max_examples=200, deadline=None)
@given(scores, st.floats(1e-6, 1.0 - 1e-6), st.floats(1e-6, 1.0 - 1e-6))
def test_conformal_keeps_hst_order_at_each_step(raw: list[float], a: float, b: float) -> None:
    """After the same history, a higher HST score never gets a lower calibrated score: the pooled
    threshold on the calibrated score is a per-stream quantile of HST's own score."""
    lo, hi = sorted((a, b))
    s = np.asarray(raw)
    c_lo = hst.conformal(np.r_[s, lo])[-1]
    c_hi = hst.conformal(np.r_[s, hi])[-1]
    assert c_lo <= c_hi
    past = s[s > 0]
    if len(past) and hi > past.max():  # above every earlier score: the top rank so far
        assert c_hi == 1.0 - 1.0 / (len(past) + 1)


def test_feature_rows_value_diff_shingle_and_missing_readings() -> None:
    v = np.array([1.0, 3.0, np.nan, 2.0])
    assert list(hst._rows(v, "value+diff")) == [
        {"value": 1.0, "diff": 0.0}, {"value": 3.0, "diff": 2.0}, None, {"value": 2.0, "diff": -1.0}]
    assert list(hst._rows(v, "value")) == [{"value": 1.0}, {"value": 3.0}, None, {"value": 2.0}]
    assert list(hst._rows(v, "shingle2")) == [
        {"lag0": 1.0, "lag1": 1.0}, {"lag0": 3.0, "lag1": 1.0}, None, {"lag0": 2.0, "lag1": 3.0}]


def test_the_cache_tag_names_every_setting_so_an_old_cache_is_not_read() -> None:
    tag = hst.config_tag()
    assert "features=value+diff" in tag and "calibration=conformal" in tag and "window_size=250" in tag
    assert hst.config_tag(calibrate=False) != tag and hst.config_tag("value") != tag
