"""blind41's second held-out-style set (`benchmarks/corpus/families_blind2.py`: energy, water, synth) is a measuring
instrument like `families.py`: a figure on it means something only if a seed always draws the same pair, the
injected copy is the clean one up to the onset and differs from it after (within the window the sweep grants,
`families.within`), and the one NAB window the sweep builds (`nab_score.windows_from_points`) is centred on that
onset, after the probation. Hypothesis over seeds for every family and kind; plus what each family's docstring
promises of its clock and ranges, and that `detection_families.py` reaches the new families without changing the
draws of the old ones (their seed streams are apart: `SEED_FAMILY_OFFSET`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from family_draws import check_draw_contract, same_draw  # noqa: E402
from corpus import families, families_blind, families_blind2  # noqa: E402

PAIRS = [(f, k) for f, kinds in families_blind2.KINDS.items() for k in kinds]
SEEDS = st.integers(0, 2**32 - 1)


@pytest.mark.parametrize("family,kind", PAIRS)
@hsettings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_draw_is_deterministic_and_its_window_follows_the_onset(family: str, kind: str, seed: int) -> None:
    check_draw_contract(families_blind2, family, kind, seed)


@pytest.mark.parametrize("family,kind", PAIRS)
@hsettings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_families_keep_their_clocks_and_ranges(family: str, kind: str, seed: int) -> None:
    d = families_blind2.draw(family, kind, seed)
    step = families.STEP_US if family == "synth" else families_blind2.STEP15_US
    assert np.all((d.ts_us - families.T0_US) % step == 0), "readings on the grid, no jitter"
    if family == "synth":
        assert np.all(np.diff(d.ts_us) == step), "a synthetic series misses no reading"
    if family == "energy":
        assert d.clean.min() >= 0.0 and d.injected.min() >= 0.0, "a meter's kWh are never negative"
        assert np.all(d.clean == families._quantise(d.clean, d.params["res"])), "the meter's resolution"
    if family == "water" and d.params["metric"] == "flow":
        assert d.clean.min() >= 0.0 and d.injected.min() >= 0.0, "an inlet's flow is never negative"
    if family == "water" and d.params["metric"] == "pressure":
        assert d.clean.min() > 0.0 and d.clean.max() <= d.params["p0"] + 3.0, "pressure below the PRV's outlet"
    if (family, kind) in (("energy", "stuck"), ("water", "freeze")):
        assert np.unique(d.injected[d.onset:]).size == 1, "a stuck meter or frozen logger reads one value"
    if (family, kind) in (("energy", "baseload"), ("water", "leak")):
        assert np.all(d.injected[d.onset:] >= d.clean[d.onset:]) or d.params.get("metric") == "pressure", \
            "extra load or a leak only adds"
    if family == "synth":
        end = d.onset + d.params["length"]
        assert np.array_equal(d.clean[end:], d.injected[end:]) or kind in ("frequency", "trend"), \
            "a GutenTAG-like anomaly ends after its length (a frequency change leaves its phase, a trend its level)"
    if (family, kind) == ("synth", "platform"):
        assert np.unique(d.injected[d.onset:d.onset + d.params["length"]]).size == 1, "a platform is one value"


def test_the_sweep_reaches_the_new_families_and_keeps_the_old_streams() -> None:
    import detection_families as det

    n_old = len(families.ALL_KINDS) + len(families_blind.KINDS)
    assert list(det.ALL_KINDS)[:n_old] == list(families.ALL_KINDS) + list(families_blind.KINDS)
    assert not set(families_blind2.KINDS) & (set(families.ALL_KINDS) | set(families_blind.KINDS)), \
        "a blind2 family must not shadow an older one"
    assert det.draw("water", "leak", 3).family == "water"
    assert same_draw(det.draw("server", "spike", 3), families.draw("server", "spike", 3))
    assert same_draw(det.draw("cloud", "leak", 3), families_blind.draw("cloud", "leak", 3))
    with pytest.raises(ValueError, match="has no kind"):
        families_blind2.draw("energy", "spike", 0)
    with pytest.raises(ValueError, match="unknown blind2 family"):
        families_blind2.draw("machine", "drift", 0)
