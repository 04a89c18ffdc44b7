"""The family generator (`benchmarks/corpus/families.py`) is a measuring instrument: a sweep's figure means something
across sessions only if a seed always draws the same pair, and a kind's miss means "the detectors did not see the
anomaly" only if the injected copy is the clean one up to the onset (nothing earlier for a detector to find, no
head start) and differs from it within the window the sweep grants (`families.within`), so an anomaly is there to
be found. Hypothesis over seeds, for every family and kind, the default four and fam30's `server` and `traffic`;
for the two clocked families also what their docstring promises of the timestamps and ranges (5-minute grid,
increasing, a share of missed readings, CPU and occupancy within 0-100 %), and that the default sweep's families
are unchanged by them (`KINDS` holds only the four; `ALL_KINDS` keeps their order, hence their seeds' streams).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from corpus import families  # noqa: E402

PAIRS = [(f, k) for f, kinds in families.ALL_KINDS.items() for k in kinds]
SEEDS = st.integers(0, 2**32 - 1)


def _same(a: families.Draw, b: families.Draw) -> bool:
    return (a.onset == b.onset and a.params == b.params and np.array_equal(a.ts_us, b.ts_us)
            and np.array_equal(a.clean, b.clean) and np.array_equal(a.injected, b.injected))


@pytest.mark.parametrize("family,kind", PAIRS)
@hsettings(max_examples=15, deadline=None)
@given(seed=SEEDS)
def test_draw_is_deterministic_and_differs_only_from_the_onset(family: str, kind: str, seed: int) -> None:
    d = families.draw(family, kind, seed)
    assert _same(d, families.draw(family, kind, seed)), f"{family}:{kind} seed {seed} drew two different pairs"
    assert len(d.ts_us) == len(d.clean) == len(d.injected)
    assert np.all(np.diff(d.ts_us) > 0), "timestamps must increase"
    assert np.isfinite(d.clean).all() and np.isfinite(d.injected).all()
    assert 450 <= d.onset < len(d.clean)  # after NAB's 15 % probation of 3,000 readings
    assert np.array_equal(d.clean[:d.onset], d.injected[:d.onset]), \
        f"{family}:{kind} seed {seed}: the injected copy differs before the onset {d.onset}"
    window = slice(d.onset, d.onset + families.within(kind))
    assert np.any(d.clean[window] != d.injected[window]), \
        f"{family}:{kind} seed {seed}: nothing injected within {families.within(kind)} readings of the onset"


@pytest.mark.parametrize("family,kind", [(f, k) for f, k in PAIRS if f in ("server", "traffic")])
@hsettings(max_examples=15, deadline=None)
@given(seed=SEEDS)
def test_clocked_families_keep_their_ranges(family: str, kind: str, seed: int) -> None:
    d = families.draw(family, kind, seed)
    steps = np.diff(d.ts_us) / families.STEP5_US
    slots = np.round(steps)
    assert np.all(np.abs(steps - slots) < 0.5) and slots.min() >= 1, "readings on a jittered 5-minute grid"
    skipped = 1.0 - len(d.ts_us) / (slots.sum() + 1)
    assert abs(skipped - d.params["missing"]) < 0.001, f"drawn {d.params['missing']:.4f} missed, {skipped:.4f} here"
    if family == "traffic":
        assert 0.03 <= d.params["missing"] <= 0.15, "traffic misses 3-15 % of its slots"
        if d.params["sensor"] == "occupancy":
            lo, hi = 0.0, 100.0
        else:
            lo, hi = 0.0, 1.15 * d.params["limit"] + d.params["res"] / 2  # capped, then rounded
    else:
        assert d.params["missing"] == 0.0 or 0.01 <= d.params["missing"] <= 0.08, "a server misses 0 or 1-8 %"
        lo, hi = (0.0, 100.0) if d.params["metric"] == "cpu" else (0.0, np.inf)
    assert lo <= d.clean.min() and d.clean.max() <= hi
    if kind != "spike":  # a speed spike may exceed the cap (a spurious reading): the point of it
        assert lo <= d.injected.min() and d.injected.max() <= hi


def test_default_sweep_families_unchanged() -> None:
    assert list(families.KINDS) == ["onoff", "rate", "temperature", "sparse"]
    assert list(families.ALL_KINDS)[:4] == list(families.KINDS)
    assert not set(families.EXTRA_KINDS) & set(families.KINDS)
    with pytest.raises(ValueError, match="has no kind"):
        families.draw("server", "period", 0)
    with pytest.raises(ValueError, match="unknown family"):
        families.draw("servers", "spike", 0)
