"""Clean on/off series of a wide family of shapes raise no spike or flatline alert; injected anomalies are still
found (issue 11, build 2: "clean ones raise no alert").

The family (benchmarks/corpus/onoff_family.py; the sweep: benchmarks/detection_onoff_sweep.py): an active level of
0.1-10,000, the idle level 0 or an offset of 1-200 % of it, 0.5-10 % noise, bursts starting at 1-12 % a reading and
2-50 readings long, a resolution of 10 / 1 / 0.1 % of the level, then an idle stretch of 65-3,000 readings and one
burst. On main before det24, of 500 members 31 raised a flatline alert (21 of them on an idle stretch: the window's
floor is read back from the float32 value ring, 0.01207969 for an idle 0.01208, so the idle reading was "off the
floor" and its run counted as a stuck sensor; the rest on a burst of a coarse-resolution series that holds its "on"
value for a whole burst, where runs that start on a window with MAD = 0 are never learned as normal) and 9 a spike
alert (7 on the return to idle after the burst that follows 1,800-2,700 idle readings: the RMS-step floor faded
over the idle stretch). Since det24 the floor comparison reads the reading as the ring stores it, and the RMS step
is not blended while the series idles: flatline 31 -> 10, spike 9 -> 1 of 500. Deterministic (`derandomize=True`).

Not shown here, strict xfails (benchmarks/README.md, det24): the coarse-resolution bursts (flatline 10 of 500);
ewma's clean alerts on the family (13 of 500); one early spike alert of 500 (a switch scored before the RMS step
has seen enough bursts).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings as hsettings, strategies as st

from detect_series import onsets, score_one
from test_detectors_adaptive import _bursty

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from corpus import onoff_family as fam  # noqa: E402

SEEDS = st.integers(0, 2**31 - 1)


def _onsets(values: np.ndarray, ts: np.ndarray) -> dict[str, list[int]]:
    sc = score_one(values, ts)
    return {name: onsets(sc, name).tolist() for name in sc.names}


@hsettings(max_examples=150, deadline=None, derandomize=True)
@given(seed=SEEDS)
@example(seed=65)
def test_an_idle_stretch_is_not_a_stuck_sensor(seed: int) -> None:
    """No flatline alert on an idle reading of a clean member after the probation (before det24: 21 of 500 members, e.g. seed 65, whose
    idle 0.01208 reads back from the value ring as 0.01207969)."""
    m = fam.member(seed)
    rows = _onsets(m.values, m.ts_us)["flatline"]
    assert [r for r in rows if r >= fam.PROBATION and m.values[r] == m.values[-1]] == []


@pytest.mark.xfail(strict=True, reason="runs that start where the window's MAD is 0 are not learned as normal; "
                   "learning them (benchmarks/detection_tried/det24_flatline_learn_uncounted_runs.patch: 10 -> 1 of "
                   "500 members) fails the LODO rule: benchmarks/README.md, det24")
@hsettings(max_examples=150, deadline=None, derandomize=True)
@given(seed=SEEDS)
@example(seed=22)
def test_bursts_at_a_coarse_resolution_are_learned_as_normal_runs(seed: int) -> None:
    """Once a member has shown 1,200 readings of its bursts, no flatline alert. Not yet: a member at a 10 % resolution
    holds its "on" value for whole bursts; runs that start where the window's MAD is 0 are not counted and never
    learned as normal, so a longer held burst alerts (seed 22: row 1610, 12 readings into a held "on" value; the
    example was seed 416 until session 42's kernel, which no longer alerts there)."""
    m = fam.member(seed, resolutions=(0.1,), burst_max_at_least=20)
    assert [r for r in _onsets(m.values, m.ts_us)["flatline"] if r >= 1200] == []


@hsettings(max_examples=100, deadline=None, derandomize=True)
@given(seed=SEEDS, idle_len=st.integers(1500, 3000))
@example(seed=0, idle_len=1971)
def test_the_return_to_idle_after_a_long_idle_stretch_is_not_a_spike(seed: int, idle_len: int) -> None:
    """The burst after 1,500-3,000 idle readings and its return to idle raise no spike alert (before det24 the
    return was scored against an RMS step that had faded over the idle stretch: 7 of 500 members, e.g. seed 0)."""
    m = fam.member(seed, idle_len=idle_len)
    assert [r for r in _onsets(m.values, m.ts_us)["spike"] if r >= fam.N_BODY] == []


@hsettings(max_examples=300, deadline=None, derandomize=True)
@given(seed=st.integers(0, 299))
@example(seed=132)
def test_det19_bursty_seeds_raise_no_spike_alert_after_the_probation(seed: int) -> None:
    """det19's bursty generator over its seeds 0-299: seed 132 raised a spike alert at row 301 (its first burst
    after 260 idle readings, against an RMS step that had faded over them)."""
    x = _bursty(3000, np.random.default_rng(seed))
    ts = fam.T0_US + np.arange(len(x), dtype=np.int64) * fam.STEP_US
    assert [r for r in _onsets(x, ts)["spike"] if r >= fam.PROBATION] == []


@hsettings(max_examples=60, deadline=None, derandomize=True)
@given(seed=SEEDS, kind=st.sampled_from(("spike_after_idle", "spike", "dropout")))
def test_injected_anomalies_are_still_found(seed: int, kind: str) -> None:
    """Silence is not bought with missed anomalies: on members of a resolution of 1 % or finer and bursts of up to
    8 or more readings, a ten-times spike (after the long idle stretch or in the body) and a dropout of 30-60
    readings are found at their row by some detector (the sweep counts every member: benchmarks/README.md)."""
    m = fam.member(seed, resolutions=(0.01, 0.001), burst_max_at_least=8)
    inj = fam.inject(m, kind, np.random.default_rng(seed))
    rows = {r for v in _onsets(inj.values, inj.ts_us).values() for r in v}
    assert inj.onset in rows


@pytest.mark.xfail(strict=True, reason="ewma still alerts on some clean members (noisy bursts, a 10 % resolution, "
                   "sparse series after long idle; det21's left-over: 13 of 500 members), flatline on bursts at a "
                   "10 % resolution (10 of 500) and one early spike alert (1 of 500): benchmarks/README.md, det24")
@hsettings(max_examples=200, deadline=None, derandomize=True)
@given(seed=SEEDS)
@example(seed=15)  # flatline at row 588 (and seeds 10, 28, 54: ewma) on main at eaf807a: not hung on the draws
def test_a_clean_member_raises_no_alert_after_the_probation(seed: int) -> None:
    m = fam.member(seed)
    got = {k: [r for r in v if r >= fam.PROBATION] for k, v in _onsets(m.values, m.ts_us).items()}
    assert {k: v for k, v in got.items() if v} == {}


def test_the_family_is_deterministic_and_spans_its_description() -> None:
    """The same seed gives the same member; levels, idle offsets, noise and resolutions cover the ranges the
    sweep's figures describe."""
    a, b = fam.member(7), fam.member(7)
    assert np.array_equal(a.values, b.values) and np.array_equal(a.ts_us, b.ts_us)
    ms = [fam.member(s) for s in range(300)]
    levels = np.array([m.level for m in ms])
    assert levels.min() < 0.3 and levels.max() > 3000
    assert any(m.idle == 0 for m in ms) and any(m.idle > m.level for m in ms)
    assert {round(m.res / m.level, 3) for m in ms} == {0.1, 0.01, 0.001}
    for m in ms:
        assert len(m.values) == fam.N_BODY + m.idle_len + (len(m.values) - m.last_burst)
        assert np.all(m.values[fam.N_BODY:m.last_burst] == m.values[-1])  # the long idle stretch is idle
        assert np.all(m.values >= m.values[-1])
