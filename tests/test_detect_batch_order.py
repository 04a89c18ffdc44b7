"""perf43's speed-ups change no bit: the batch order, the bank's Python around the kernel, the refreshes' gathers.

Why: the detectors' throughput was raised without changing any output (issue 11: throughput no lower than before,
every detection change costs some). Each speed-up replaces a straightforward form with a faster one that must give
the same result on every input, not only on the benchmark's: the (slot, ts) order of a batch by a stable sort of the
slots where each slot's times are already in order (else the former lexsort), a batch with nothing skipped returned
without a second gather, the kernel's output arrays not zeroed first, the rings gathered into place and packed only
where an entry is NaN. The former forms are written out here and compared bit for bit over generated batches and
rings (unsorted, ties, duplicates, many slots, NaN and +-inf values, empty).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbanpulse.detect import DetectionSettings, DetectorBank, _kernel
from urbanpulse.detect.bank import Scores, slot_ts_order
from urbanpulse.detect.settings import DETECTOR_NAMES

T0 = 1_700_000_000_000_000
ARRANGEMENTS = ("reading-major", "slot-major", "interleaved", "shuffled")


def _former_order(slot: np.ndarray, ts: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The batch order before perf43: the finite values' positions lexsorted by (slot, ts)."""
    pos = np.flatnonzero(np.isfinite(value))
    return pos[np.lexsort((ts[pos], slot[pos]))]


@st.composite
def batches(draw: st.DrawFn, max_slots: int = 40, max_rows: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch of readings of up to `max_slots` series in one of four arrangements: reading-major (the
    benchmark's), slot-major, each series in time order but interleaved at random, or shuffled; times with ties
    (a series' duplicates) and steps back; values with NaN and +-inf."""
    n_slots = draw(st.integers(1, max_slots))
    rows = draw(st.integers(0, max_rows))
    arrangement = draw(st.sampled_from(ARRANGEMENTS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    step = rng.integers(0, 3, (n_slots, rows)) * 60_000_000  # 0: a tie with the reading before
    ts = T0 + np.cumsum(step, axis=1) + rng.integers(-2, 3, (n_slots, 1)) * 60_000_000
    slot = np.repeat(np.arange(n_slots), rows).reshape(n_slots, rows)
    if arrangement == "reading-major":
        slot, ts = slot.T.reshape(-1), ts.T.reshape(-1)
    elif arrangement == "slot-major":
        slot, ts = slot.reshape(-1), ts.reshape(-1)
    else:
        slot, ts = slot.reshape(-1), ts.reshape(-1)
        if arrangement == "interleaved":  # a random merge of the series: each one's times stay in order
            perm = np.argsort(rng.random(len(slot)), kind="stable")
            idx = np.empty_like(perm)
            for s in range(n_slots):
                mine = np.flatnonzero(slot == s)
                idx[np.sort(perm[mine])] = mine
            slot, ts = slot[idx], ts[idx]
        else:
            perm = rng.permutation(len(slot))
            slot, ts = slot[perm], ts[perm]
    value = np.round(rng.normal(0, 3, len(slot)), draw(st.integers(0, 2)))
    odd = rng.random(len(slot))
    value[odd < 0.05] = np.nan
    value[(odd >= 0.05) & (odd < 0.07)] = np.inf
    value[(odd >= 0.07) & (odd < 0.08)] = -np.inf
    return slot.astype(np.int64), ts.astype(np.int64), value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(max_slots=300, max_rows=8))
def test_the_batch_order_is_the_former_lexsort_on_any_batch(batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """A stable sort of the slots (each slot's times in order) or else the lexsort gives the former permutation
    exactly, with the slots and times in it, on any arrangement of any batch, NaN and +-inf values and ties too."""
    slot, ts, value = batch
    order, s, t = slot_ts_order(slot, ts, value)
    want = _former_order(slot, ts, value)
    assert order.dtype == np.int64 and np.array_equal(order, want)
    assert np.array_equal(s, slot[want]) and np.array_equal(t, ts[want])


class FormerBank(DetectorBank):
    """DetectorBank with the Python around the kernel as it was before perf43 (lexsort, zeroed outputs, gathers
    after the skips, copied index); the same kernel."""

    def _scorable(self, slot: np.ndarray, ts_us: np.ndarray,
                  value: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        slot, ts, val = np.asarray(slot, np.int64), np.asarray(ts_us, np.int64), np.asarray(value, np.float64)
        order = _former_order(slot, ts, val)
        s, t = slot[order], ts[order]
        keep = t > self.last_ts[s]
        if len(s) > 1:
            same = s[1:] == s[:-1]
            keep[1:] &= ~(same & (t[1:] <= t[:-1]))
        order = order[keep]
        return order, slot[order], ts[order], val[order]

    def _process(self, slot: np.ndarray, ts_us: np.ndarray, value: np.ndarray, emit: bool) -> Scores | None:
        order, s, t, x = self._scorable(slot, ts_us, value)
        n = len(order)
        out = np.zeros((n, len(DETECTOR_NAMES)), np.float64)
        fused = np.zeros(n, np.float64)
        veto = np.zeros(n, np.uint8)
        if n:
            _kernel_process()(s, t, x, self.last_ts, self.profile, self.profiles.table, self.state, self.values,
                              self.changes, self.gaps, out, fused, veto, 8, 16, self.season)
        return self._result(order.astype(np.int64), s, t, x, out, fused, veto) if emit else None


def _kernel_process():  # noqa: ANN202
    """The kernel the bank calls (built ahead of time, or the JIT's: URBANPULSE_KERNELS)."""
    from urbanpulse.detect import bank

    return bank._kernel().process


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == \
        np.ascontiguousarray(b).tobytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=batches(max_slots=24, max_rows=40), second=batches(max_slots=24, max_rows=40))
def test_a_bank_scores_two_batches_as_with_the_former_python_bit_for_bit(
        first: tuple[np.ndarray, np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Two batches (the second's readings partly older than the first's: skipped) through the bank and through
    one with the former Python around the same kernel: every output field and every state array bit for bit
    (the REFRESH_EVERY 8 / EAGER_REFRESH 16 the former bank passes are the bank's)."""
    from urbanpulse.detect.bank import EAGER_REFRESH, REFRESH_EVERY

    assert (REFRESH_EVERY, EAGER_REFRESH) == (8, 16)
    banks = [DetectorBank(DetectionSettings()), FormerBank(DetectionSettings())]
    for b in banks:
        b.assign(np.arange(24), [f"s{k}" for k in range(24)], ["value"] * 24)
    for slot, ts, value in (first, second):
        got, want = (b.score(slot, ts, value) for b in banks)
        for field in ("index", "slot", "ts_us", "value", "score", "decision", "anomaly_score", "alert"):
            assert _same_bits(getattr(got, field), getattr(want, field)), field
    for name in ("last_ts", "state", "values", "changes", "gaps", "season"):
        assert _same_bits(getattr(banks[0], name), getattr(banks[1], name)), name


def _former_gather(ring_row: np.ndarray, base: float | None, window: int, nc: int,
                   buf: np.ndarray) -> tuple[int, int]:
    """`_gather` / `_gather_values` (base given) before perf43: each entry written to buf[m], m counting the
    entries that are not NaN (plain Python, numpy float32 -> float64 as the kernel converts)."""
    R = ring_row.shape[0]
    w = window if window < R else R
    m = k = 0
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, as in the kernel
        for j in range(R):
            v = np.float64(ring_row[j]) if base is None else base + np.float64(ring_row[j])
            buf[m] = v
            inside = w >= R or (nc - 1 - j) % R < w
            m += int(v == v and inside)
            k += int(v - v == 0.0 and inside)
    return m, k


RING = st.lists(st.one_of(st.floats(-1e3, 1e3, width=32), st.sampled_from([math.nan, math.inf, -math.inf, 0.0])),
                min_size=1, max_size=140)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ring=RING, data=st.data())
def test_a_ring_gathered_into_place_and_packed_is_the_former_gather(ring: list[float], data: st.DataObject) -> None:
    """The gathers (whole ring: into place, packed only where an entry is NaN; part of it: as before) return the
    same counts and the same entries in the same order as the former loop, NaN anywhere or nowhere."""
    if data.draw(st.booleans(), label="no NaN"):
        ring = [0.5 if v != v else v for v in ring]
    row = np.array(ring, np.float32)
    R = len(row)
    window = data.draw(st.integers(1, R + 3), label="window")
    nc = data.draw(st.integers(0, 3 * R), label="nc")
    base = data.draw(st.sampled_from([1.5, 0.0, -2e5]), label="base")
    for b in (None, base):
        got_buf, want_buf = np.full(R, 7.0), np.full(R, 7.0)
        got = (_kernel._gather(row, window, nc, got_buf) if b is None
               else _kernel._gather_values(row, b, window, nc, got_buf))
        want = _former_gather(row, b, window, nc, want_buf)
        assert tuple(got) == want
        assert got_buf[:want[0]].tobytes() == want_buf[:want[0]].tobytes()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(st.integers(0, 4).map(float), min_size=5, max_size=140), data=st.data())
def test_a_quantised_window_around_an_entry_returns_a_sorted_copys_bits(entries: list[float],
                                                                        data: st.DataObject) -> None:
    """Where the kth entry equals the guess (a quantised window, the guess one of its values: no partition pass
    runs) the kth and (kth-1)th order statistics are a sorted copy's, as without a guess."""
    src = np.array(entries, np.float64)
    m = data.draw(st.integers(5, len(src)), label="m")
    kth = data.draw(st.integers(0, m - 1), label="kth")
    guess = data.draw(st.sampled_from(entries[:m]), label="guess")
    got = _kernel._select(src, m, kth, np.empty(len(src)), np.empty(len(src)), guess)
    s = np.sort(src[:m])
    assert got == (s[kth], s[kth - 1] if kth else s[0])
    assert got == _kernel._select(src, m, kth, np.empty(len(src)), np.empty(len(src)), math.nan)
