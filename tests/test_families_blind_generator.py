"""blind40's held-out-style families (`benchmarks/corpus/families_blind.py`) are a measuring instrument like
`families.py`: a figure on them means something only if a seed always draws the same pair, the injected copy is
the clean one up to the onset and differs from it within the window the sweep grants (`families.within`), and
the one NAB window the sweep builds (`nab_score.windows_from_points`) is centred on that onset, after the
probation. Hypothesis over seeds for every family and kind; plus what each family's docstring promises of its
timestamps and ranges, and that `detection_families.py` reaches the new families without changing the seeds of
the old ones (their streams are apart: `SEED_FAMILY_OFFSET`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from family_draws import check_draw_contract, same_draw  # noqa: E402
from corpus import families, families_blind  # noqa: E402

PAIRS = [(f, k) for f, kinds in families_blind.KINDS.items() for k in kinds]
SEEDS = st.integers(0, 2**32 - 1)


@pytest.mark.parametrize("family,kind", PAIRS)
@hsettings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_draw_is_deterministic_and_its_window_follows_the_onset(family: str, kind: str, seed: int) -> None:
    check_draw_contract(families_blind, family, kind, seed)


@pytest.mark.parametrize("family,kind", PAIRS)
@hsettings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_families_keep_their_clocks_and_ranges(family: str, kind: str, seed: int) -> None:
    d = families_blind.draw(family, kind, seed)
    step = families_blind.HOUR_US if family == "adprice" else families.STEP5_US
    slots = np.diff(d.ts_us) / step
    assert np.all(np.abs(slots - np.round(slots)) < 0.5) and np.round(slots).min() >= 1, "on a jittered grid"
    if family == "online":
        assert np.all(slots == 1.0), "an aggregator writes every bucket, zero ones too"
        assert np.all(d.clean == np.round(d.clean)) and d.clean.min() >= 0, "counts"
    if family == "adprice":
        assert np.all(d.ts_us % families_blind.HOUR_US == families.T0_US % families_blind.HOUR_US), "on the hour"
        assert d.clean.min() > 0, "a price per click is positive"
    if family == "cloud" and d.params["metric"] == "cpu":
        assert 0.0 <= d.clean.min() and d.injected.max() <= 100.0, "CPU stays within 0-100 %"
    if family == "cloud" and kind == "dead":
        assert np.all(d.injected[d.onset:] == 0.0), "a dead metric reads 0 from the onset on"
    if family == "machine" and kind == "shutdown":
        end = d.onset + d.params["length"] - 1
        assert d.injected[end] < d.clean[end] - 3.0, "a stopped machine cools towards ambient (no running rise)"


def test_the_sweep_reaches_the_new_families_and_keeps_the_old_streams() -> None:
    import detection_families as det

    assert list(det.ALL_KINDS)[:len(families.ALL_KINDS)] == list(families.ALL_KINDS)
    assert not set(families_blind.KINDS) & set(families.ALL_KINDS), "a blind family must not shadow an old one"
    assert det.draw("machine", "drift", 3).family == "machine"
    assert same_draw(det.draw("server", "spike", 3), families.draw("server", "spike", 3))
    with pytest.raises(ValueError, match="has no kind"):
        families_blind.draw("machine", "period", 0)
    with pytest.raises(ValueError, match="unknown blind family"):
        families_blind.draw("server", "spike", 0)
