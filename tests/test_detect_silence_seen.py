"""A series' routine outages are not each a one-in-a-thousand event (fp45, issue 11). On the traffic family the
counters drop out for 10-30 intervals now and then; silence's calibrated score (silcal32) put each such gap at a tail
of 1e-4-1e-3 however many the series had shown, so every outage after the probation was a false positive at the
held-out benchmark's pooled threshold (306 of the traffic family's 666 over 300 seeds; 8 of its 859 first detections).
`_kernel._silence_seen` multiplies silence's emitted tail by 1 + the number of the series' earlier silence emissions
at SI_SEEN (0.999) or higher.

What is claimed, over a regular minute series (a slow wave and noise) with 5-8 outages of 10-30 intervals each, at
300 readings apart, lengths drawn: once two outages have scored SI_SEEN or higher, no later outage that is no
longer than the longest before it scores SI_SEEN (on main such an outage scores a tail of 5e-4-1e-3 whatever came
before), and the series' first outage still scores 0.99 or higher (a first gap scores as before). Beside it: the
compiled kernel computes what its source says. The map runs after the decisions and the second stage: it changes no
decision (benchmarks/README.md, fp45)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from detect_series import MIN_US, T0
from urbanpulse.detect import DetectionSettings, DetectorBank


N = 3000
SI_SEEN = 0.999  # layout.SI_SEEN (a literal, so the test runs on a tree without it)


def outages(seed: int, lengths: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A minute series of N readings with an outage of each of `lengths` intervals, 300 readings apart from reading
    600 on (the reading that ends each); returns (ts, x, the rows that end the outages)."""
    rng = np.random.default_rng(seed)
    step = np.full(N, MIN_US, np.int64)
    ends = 600 + 300 * np.arange(len(lengths))
    step[ends] = MIN_US * np.asarray(lengths, np.int64)
    ts = T0 + np.cumsum(step)
    x = 10.0 + np.sin(np.arange(N) / 50.0) + rng.normal(0.0, 0.2, N)
    return ts, x, ends


def score(ts: np.ndarray, x: np.ndarray):
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.zeros(1, np.int64), ["s0"], ["value"])
    return bank.score(np.zeros(len(x), np.int64), ts, x)


@hsettings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), lengths=st.lists(st.integers(10, 30), min_size=5, max_size=8))
def test_a_series_routine_outages_stop_scoring_one_in_a_thousand(seed: int, lengths: list[int]) -> None:
    """After two outages at SI_SEEN or higher, an outage no longer than the longest before it scores below SI_SEEN;
    the first outage scores 0.99 or higher (it is a silence emission, scored as before)."""
    ts, x, ends = outages(seed, lengths)
    a = score(ts, x).anomaly_score[ends]
    assert a[0] >= 0.99, f"outages {lengths}: the first scored {a[0]:.6f}"
    seen = 0
    for j in range(len(ends)):
        if seen >= 2 and lengths[j] <= max(lengths[:j]):
            assert a[j] < SI_SEEN, (f"outages {lengths}: outage {j} ({lengths[j]} intervals) scored {a[j]:.6f} after "
                                    f"{seen} at >= {SI_SEEN}")
        seen += a[j] >= SI_SEEN


def test_the_kernel_computes_its_source_on_repeated_outages() -> None:
    """The compiled kernel = its interpreted source (anomaly_score, scores, decisions, state, the count included)
    on a series with six outages, and the count reached 2 or more (the map ran)."""
    import detect_reference

    from urbanpulse.detect.layout import S

    ts, x, _ = outages(3, [18, 22, 19, 15, 13, 23])
    settings = DetectionSettings()
    bank, ref = DetectorBank(settings), detect_reference.ReferenceBank(settings)
    for b in (bank, ref):
        b.assign(np.zeros(1, np.int64), ["s0"], ["value"])
    slots = np.zeros(len(x), np.int64)
    got, want = bank.score(slots, ts, x), ref.score(slots, ts, x)
    np.testing.assert_array_equal(got.anomaly_score, want.anomaly_score)
    np.testing.assert_array_equal(got.score, want.score)
    np.testing.assert_array_equal(got.decision, want.decision)
    np.testing.assert_array_equal(bank.state, ref.state)
    assert bank.state[0, S["si_seen"]] >= 2
