"""The refreshes' order statistics (`_kernel._select`) searched around a guess are those of a sorted copy, bit for bit.

Why (perf42): the rolling medians (values, MAD, |changes|) are found by a quickselect whose first pass now pivots on
the same statistic at the slot's last refresh (a guess: it need not be an entry, and may be anything a state column
holds: NaN, +-inf, +-0.0, far off). A pivot that is not an entry could be returned in place of one, and an order
statistic's bits are unique only where no entry is -0.0 (equal values are then one bit pattern): so the kernel
passes a guess only where no entry can be -0.0, and NaN (the median-of-three search, pass for pass as before)
elsewhere. Live scoring, `urbanpulse detect` and the kernels built ahead of time all run this one search, so a
wrong bit here would be a changed anomaly_score everywhere at once, not a difference between them.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbanpulse.detect import _kernel

# entries: quantised values with many ties (counts, regular gaps), spread ones, +-inf, and +0.0 (no -0.0)
ENTRY = st.one_of(st.integers(-3, 3).map(float), st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
                  st.sampled_from([math.inf, -math.inf, 0.0, 1e-300, 5e-324]))


def _bits(x: float) -> int:
    return int(np.float64(x).view(np.int64))


def _expected(src: np.ndarray, m: int, kth: int) -> tuple[float, float]:
    s = np.sort(src[:m])
    return float(s[kth]), float(s[kth - 1] if kth else s[0])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(ENTRY, min_size=1, max_size=140), data=st.data())
def test_a_search_around_any_guess_returns_the_bits_of_a_sorted_copy(entries: list[float], data: st.DataObject) -> None:
    """Any guess (an entry, between entries, beyond them all, +-0.0, +-inf, NaN) gives the kth and (kth-1)th
    order statistics of a sorted copy bit for bit, the same as the search without a guess, and leaves src as it
    was (the refresh reads its window again for the next statistic)."""
    src = np.array(entries, np.float64)
    m = data.draw(st.integers(1, len(src)), label="m")
    kth = data.draw(st.integers(0, m - 1), label="kth")
    guess = data.draw(st.one_of(st.sampled_from(entries), ENTRY, st.just(-0.0), st.just(math.nan),
                                st.floats(allow_nan=False)), label="guess")
    before = src.copy()
    a, b = np.full(len(src), np.nan), np.full(len(src), np.nan)
    got = _kernel._select(src, m, kth, a, b, guess)
    plain = _kernel._select(src, m, kth, np.empty(len(src)), np.empty(len(src)), math.nan)
    want = _expected(src, m, kth)
    assert [_bits(v) for v in got] == [_bits(v) for v in want], (got, want)
    assert [_bits(v) for v in plain] == [_bits(v) for v in want], (plain, want)
    assert np.array_equal(src, before) and [_bits(v) for v in src] == [_bits(v) for v in before]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5]), min_size=1, max_size=60), data=st.data())
def test_without_a_guess_a_window_with_negative_zeros_is_searched_as_before(entries: list[float],
                                                                           data: st.DataObject) -> None:
    """Where the window may hold -0.0 (a value ring whose base is -0.0) the kernel passes no guess: the values are
    a sorted copy's (the sign of a zero is the pivot's, as it always was), and the base test says so."""
    src = np.array(entries, np.float64)
    m = data.draw(st.integers(1, len(src)), label="m")
    kth = data.draw(st.integers(0, m - 1), label="kth")
    got = _kernel._select(src, m, kth, np.empty(len(src)), np.empty(len(src)), math.nan)
    assert got == _expected(src, m, kth)
    assert not _kernel._no_negative_zero(-0.0)
    assert _kernel._no_negative_zero(0.0) and _kernel._no_negative_zero(-1.5) and _kernel._no_negative_zero(math.nan)
