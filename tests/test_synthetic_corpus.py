"""The development set's synthetic generator (benchmarks/corpus/synthetic.py; issue 11, "What to build" 1):
series of the shapes a city's feeds have and the detectors were not tuned on, with the anomaly kinds a city
meets, labelled at their onsets.

Why: the development set's synthetic dataset is one of the six that leave-one-dataset-out scores; if the
generator stopped covering a shape or a kind, or labelled an onset where nothing happens, the report would
silently measure something else than the issue asks for."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from corpus import synthetic  # noqa: E402

#: what the issue names: bursty on/off, irregular and event-driven sampling, smooth periodic, quantised and
#: mostly-zero, trending and heavy-tailed series; spikes, level shifts, drifts, stuck values, dropouts,
#: changed periodicity, noise changes
FAMILIES = {"bursty", "irregular", "sine", "quantised", "trending", "heavy_tailed"}
KINDS = {"spike", "level_shift", "drift", "stuck", "dropout", "period", "noise"}

seeds = st.integers(0, 2**31 - 1)


def _family(f: synthetic.SynthFile) -> str:
    return f.name.rsplit("_", 2)[0] if f.name.endswith("_clean") else f.name.rsplit("_", 1)[0]


@given(seeds)
@hsettings(max_examples=8, deadline=None)
def test_every_shape_and_kind_of_the_issue_is_generated_for_any_seed(seed: int) -> None:
    files = synthetic.generate(seed)
    assert {_family(f) for f in files} == FAMILIES
    assert {k for f in files for k in f.kinds} == KINDS
    for fam in FAMILIES:
        mine = [f for f in files if _family(f) == fam]
        assert sum(f.name.endswith("_clean") for f in mine) == synthetic.CLEAN_FILES
        assert {k for f in mine for k in f.kinds} == set(synthetic.FAMILY_KINDS[fam])


@given(seeds)
@hsettings(max_examples=8, deadline=None)
def test_labels_are_onsets_after_the_probation_and_clean_files_have_none(seed: int) -> None:
    for f in synthetic.generate(seed):
        n = len(f.values)
        assert len(f.ts_us) == n and (np.diff(f.ts_us) > 0).all() and np.isfinite(f.values).all()
        assert len(f.onsets) == len(f.kinds)
        if f.name.endswith("_clean"):
            assert f.onsets == []
            continue
        assert 1 <= len(f.onsets) <= 3
        assert f.onsets == sorted(f.onsets)
        # NAB's probationary part is the first 15 % of a file: an onset there would not be scored
        assert all(0.15 * n <= o < n for o in f.onsets), (f.name, f.onsets, n)


@given(seeds)
@hsettings(max_examples=8, deadline=None)
def test_the_shapes_are_what_their_names_say(seed: int) -> None:
    """Irregular sampling has gaps of 3x the median gap as a normal part (the issue: 4-15 % of gaps on
    event-driven feeds); on/off and mostly-zero series are zero most of the time; a dropout removes readings."""
    for f in synthetic.generate(seed):
        fam = _family(f)
        gaps = np.diff(f.ts_us).astype(np.float64)
        if fam == "irregular" and "dropout" not in f.kinds:
            assert 0.04 <= float((gaps > 3 * np.median(gaps)).mean()) <= 0.3
        if fam in ("bursty", "quantised") and f.name.endswith("_clean"):
            assert float((f.values == 0).mean()) > 0.5
        if "dropout" in f.kinds and fam != "irregular":
            assert len(f.values) < synthetic.ROWS and gaps.max() >= 30 * np.median(gaps)


def test_the_generator_is_deterministic_for_a_seed() -> None:
    a, b = synthetic.generate(11), synthetic.generate(11)
    assert [f.name for f in a] == [f.name for f in b]
    assert all(np.array_equal(x.values, y.values) and x.onsets == y.onsets for x, y in zip(a, b))
