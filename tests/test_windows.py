"""WindowState: late flags against per-source watermarks, closing windows (by later readings,
by the watermark, by wall-clock idleness), eviction, and closed windows that do not depend on
how the stream was cut into batches. Pure numpy, no services; no timing assertions."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from urbanpulse.model import Flag
from urbanpulse.windows import ClosedWindows, WindowSettings, WindowState

S = 1_000_000  # one second in us
T0 = 1_709_251_200 * S  # 2024-03-01T00:00:00Z, a whole minute


def state(**kw: object) -> WindowState:
    w = WindowState(WindowSettings(**kw))
    return w


def feed(w: WindowState, slot, ts_s, value=None, source: str = "mqtt", wall_s: float = 0.0, flags=None):
    ts = T0 + (np.asarray(ts_s, np.float64) * S).astype(np.int64)
    slot = np.asarray(slot, np.int32)
    value = np.arange(len(ts), dtype=np.float64) if value is None else np.asarray(value, np.float64)
    flags = np.zeros(len(ts), np.int16) if flags is None else flags
    return w.observe(source, slot, ts, value, flags, int(wall_s * S)), flags


def rows(c: ClosedWindows) -> list[tuple]:
    return sorted(zip(c.slot.tolist(), ((c.start_us - T0) // S).tolist(), c.count.tolist(), c.mean.tolist()))


def test_readings_older_than_watermark_minus_lateness_are_flagged_late_in_place() -> None:
    w = state(allowed_lateness_s=10)
    w.assign(np.array([0, 1]), ["pm2_5", "pm2_5"], now_wall_us=0)
    flags = np.array([0, 0, 0, 0, int(Flag.HAS_UNIT)], np.int16)
    # the watermark moves reading by reading: 100 first, so 95 is fine, 89 is late,
    # 90 sits exactly on watermark - lateness (not late), and the HAS_UNIT bit survives
    obs, flags = feed(w, [0, 1, 0, 1, 0], [100, 95, 89, 90, 80], flags=flags)
    assert flags.tolist() == [0, 0, int(Flag.LATE), 0, int(Flag.LATE | Flag.HAS_UNIT)]
    assert obs.late == 2 and w.counters["late_beyond_lateness"] == 2
    assert w.watermark("mqtt") == T0 + 100 * S
    # a watermark is per source: kafka has seen nothing yet, so nothing is late there
    _, kflags = feed(w, [0], [50], source="kafka")
    assert kflags.tolist() == [0]
    assert w.watermark("kafka") == T0 + 50 * S
    # and within a batch the later reading does not make an earlier-arrived one late
    _, flags = feed(w, [1, 1], [95, 200])
    assert flags.tolist() == [0, 0]


def test_a_reading_for_a_later_window_closes_the_previous_one_in_the_same_batch() -> None:
    w = state()
    w.assign(np.array([3]), ["no2"], now_wall_us=0)
    obs, _ = feed(w, [3, 3, 3, 3], [1, 30, 59, 61], value=[1, 2, 6, 100])
    c = obs.closed
    assert rows(c) == [(3, 0, 3, 3.0)]
    assert (c.end_us - c.start_us).tolist() == [60 * S]
    assert c.min.tolist() == [1] and c.max.tolist() == [6] and c.first.tolist() == [1] and c.last.tolist() == [6]
    np.testing.assert_allclose(c.std, [np.std([1, 2, 6], ddof=1)])


def test_resent_and_out_of_order_readings_do_not_enter_a_window() -> None:
    w = state()
    w.assign(np.array([0]), ["no2"], now_wall_us=0)
    obs, flags = feed(w, [0, 0, 0], [10, 20, 20], value=[1, 2, 2])  # a re-send in the batch
    assert obs.late_within_lateness == 1
    obs, flags = feed(w, [0, 0], [20, 15], value=[2, 9])  # a re-send and an out-of-order reading
    assert obs.late_within_lateness == 2 and flags.tolist() == [0, 0]
    assert rows(w.close_idle(10**18)) == [(0, 0, 2, 1.5)]


def test_the_source_watermark_closes_windows_of_quiet_series_after_the_lateness() -> None:
    w = state(allowed_lateness_s=30)
    w.assign(np.array([0, 1]), ["a", "a"], now_wall_us=0)
    obs, _ = feed(w, [0, 1], [10, 20])
    assert len(obs.closed) == 0
    # slot 1 keeps talking on the same source; slot 0's window [0, 60) closes at watermark 90
    obs, _ = feed(w, [1], [89])
    assert rows(obs.closed) == [(1, 0, 1, 1.0)]  # slot 1's own first window, superseded
    obs, _ = feed(w, [1], [90])
    assert rows(obs.closed) == [(0, 0, 1, 0.0)]
    # another source's watermark does not close mqtt's series
    w.assign(np.array([2]), ["a"], now_wall_us=0)
    feed(w, [2], [5], source="kafka")
    obs, _ = feed(w, [1], [400])
    assert 2 not in obs.closed.slot.tolist()


def test_idle_series_close_by_wall_clock_and_a_later_reading_does_not_reopen() -> None:
    w = state(size_s=60, allowed_lateness_s=30)
    w.assign(np.array([0]), ["a"], now_wall_us=0)
    feed(w, [0, 0], [1, 2], wall_s=1000)
    assert len(w.close_idle(int((1000 + 90) * S))) == 0  # exactly size + lateness: still open
    closed = w.close_idle(int((1000 + 91) * S))
    assert rows(closed) == [(0, 0, 2, 0.5)]
    assert len(w.close_idle(int(5000 * S))) == 0  # closed once only
    # on time by the watermark, but its window is gone: counted, stored elsewhere, not reopened
    obs, flags = feed(w, [0], [3], wall_s=1100)
    assert flags.tolist() == [0] and obs.late_within_lateness == 1
    assert w.counters["late_within_lateness"] == 1
    assert len(w.close_idle(int(5000 * S))) == 0
    # the next interval opens a fresh window
    feed(w, [0], [61], wall_s=1100)
    assert rows(w.close_idle(int(5000 * S))) == [(0, 60, 1, 0.0)]


def test_per_metric_window_sizes() -> None:
    w = state(size_s=60, sizes={"rain": 3600}, allowed_lateness_s=0)
    w.assign(np.array([0, 1]), ["pm2_5", "rain"], now_wall_us=0)
    obs, _ = feed(w, [0, 1, 0, 1], [10, 10, 70, 70])
    assert rows(obs.closed) == [(0, 0, 1, 0.0)]
    assert rows(w.close_idle(10**18)) == [(0, 60, 1, 2.0), (1, 0, 2, 2.0)]


def test_idle_series_are_evicted_and_slots_can_be_reused() -> None:
    w = state(evict_after_s=600)
    w.ensure_capacity(3)
    w.assign(np.array([0, 1, 2]), ["a", "a", "a"], now_wall_us=0)
    feed(w, [0, 1], [0, 0], wall_s=100)
    feed(w, [2], [1], wall_s=500)
    assert w.evict_idle(int(650 * S)).tolist() == []
    w.close_idle(int(701 * S))
    assert sorted(w.evict_idle(int(701 * S)).tolist()) == [0, 1]
    assert w.active == 1 and w.least_recently_seen(5).tolist() == [2]
    # an evicted slot given to a new series starts empty
    w.assign(np.array([0]), ["b"], now_wall_us=int(800 * S))
    feed(w, [0], [300], value=[7.0], wall_s=800)
    assert rows(w.evict(np.array([0]))) == [(0, 300, 1, 7.0)]
    assert w.active == 1


def test_least_recently_seen_picks_the_oldest_arrivals() -> None:
    w = state()
    w.assign(np.arange(5), ["a"] * 5, now_wall_us=0)
    for s, wall in enumerate([50, 10, 40, 20, 30]):
        feed(w, [s], [s], wall_s=wall)
    assert sorted(w.least_recently_seen(2).tolist()) == [1, 3]


def test_capacity_grows_by_doubling_and_bytes_per_slot_are_reported() -> None:
    w = state()
    w.ensure_capacity(100)
    assert w.capacity == 100
    w.ensure_capacity(101)
    assert w.capacity == 200
    w.ensure_capacity(150)
    assert w.capacity == 200
    assert 64 <= w.nbytes_per_slot() <= 128


def test_eviction_must_not_come_before_windows_close() -> None:
    with pytest.raises(ValidationError):
        WindowSettings(size_s=600, allowed_lateness_s=60, evict_after_s=300)
    with pytest.raises(ValidationError):
        WindowSettings(sizes={"rain": 0.1})


def _stream(seed: int, n_series: int = 40, n: int = 20_000):
    """Interleaved series, mostly in order, with jitter and a few readings minutes late."""
    rng = np.random.default_rng(seed)
    slot = rng.integers(0, n_series, n).astype(np.int32)
    ts = T0 + np.sort(rng.integers(0, 3 * 3600, n)).astype(np.int64) * S + rng.integers(0, S, n)
    ts += rng.integers(-20, 20, n) * S  # out of order within the lateness
    late = rng.random(n) < 0.01
    ts[late] -= rng.integers(120, 600, late.sum()) * S  # beyond it
    dup = rng.random(n) < 0.005  # exact re-sends
    ts[1:][dup[1:]] = ts[:-1][dup[1:]]
    slot[1:][dup[1:]] = slot[:-1][dup[1:]]
    return slot, ts, rng.normal(20, 5, n)


@pytest.mark.parametrize("seed", [1, 2])
def test_closed_windows_do_not_depend_on_batch_boundaries(seed: int) -> None:
    slot, ts, value = _stream(seed)
    n = len(ts)
    results = []
    rng = np.random.default_rng(seed + 100)
    for cuts in ([n], [n // 2, n - n // 2], None):
        if cuts is None:  # random batch sizes, some of a single reading
            sizes = rng.integers(1, 700, n)
            bounds = np.cumsum(sizes)
            bounds = np.concatenate([[0], bounds[bounds < n], [n]])
        else:
            bounds = np.concatenate([[0], np.cumsum(cuts)])
        w = state(allowed_lateness_s=60)
        w.assign(np.arange(40), ["a"] * 40, now_wall_us=0)
        flags = np.zeros(n, np.int16)
        closed = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            f = flags[a:b]
            closed.append(w.observe("kafka", slot[a:b], ts[a:b], value[a:b], f, 0).closed)
        closed.append(w.close_idle(10**18))
        c = ClosedWindows.concat(closed)
        order = np.lexsort((c.start_us, c.slot))
        results.append((c, order, flags.copy(), dict(w.counters)))
    ref, ref_order, ref_flags, ref_counters = results[0]
    assert ref_counters["late_beyond_lateness"] > 0 and ref_counters["late_within_lateness"] > 0
    for c, order, flags, counters in results[1:]:
        assert counters == ref_counters
        np.testing.assert_array_equal(flags, ref_flags)
        for name in ("slot", "start_us", "end_us", "count", "min", "max", "first", "last"):
            np.testing.assert_array_equal(getattr(c, name)[order], getattr(ref, name)[ref_order], err_msg=name)
        np.testing.assert_allclose(c.mean[order], ref.mean[ref_order], rtol=1e-12)
        np.testing.assert_allclose(c.std[order], ref.std[ref_order], rtol=1e-9)


def test_in_order_windows_equal_a_direct_group_by() -> None:
    rng = np.random.default_rng(9)
    n = 5000
    slot = rng.integers(0, 10, n).astype(np.int32)
    ts = T0 + np.sort(rng.choice(3600 * S, n, replace=False))
    value = rng.normal(0, 1, n)
    w = state()
    w.assign(np.arange(10), ["a"] * 10, now_wall_us=0)
    parts = [w.observe("mqtt", slot[a:a + 333], ts[a:a + 333], value[a:a + 333], np.zeros(333, np.int16), 0).closed
             for a in range(0, n, 333)]
    c = ClosedWindows.concat(parts + [w.close_idle(10**18)])
    assert c.count.sum() == n
    for s, start, count, mean, std in zip(c.slot, c.start_us, c.count, c.mean, c.std):
        sel = (slot == s) & (ts >= start) & (ts < start + 60 * S)
        assert sel.sum() == count
        expected_std = value[sel].std(ddof=1) if count > 1 else np.nan
        np.testing.assert_allclose([mean, std], [value[sel].mean(), expected_std], rtol=1e-9)
