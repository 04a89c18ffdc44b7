"""WindowState: late flags against per-(source, lane) watermarks, closing windows (by later
readings, by the watermark, by wall-clock idleness), eviction, closed windows that do not depend
on how the stream was cut into batches, and the kernel against a plain-Python reading-by-reading
reference of the contract. No services; no timing assertions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from urbanpulse.model import Flag
from urbanpulse.windows import ClosedWindows, WindowSettings, WindowState
from urbanpulse.windows.state import NONE

S = 1_000_000  # one second in us
T0 = 1_709_251_200 * S  # 2024-03-01T00:00:00Z, a whole minute


def state(**kw: object) -> WindowState:
    w = WindowState(WindowSettings(**kw))
    return w


def feed(w: WindowState, slot, ts_s, value=None, source: str = "mqtt", wall_s: float = 0.0, flags=None, lane=None):
    ts = T0 + (np.asarray(ts_s, np.float64) * S).astype(np.int64)
    slot = np.asarray(slot, np.int32)
    value = np.arange(len(ts), dtype=np.float64) if value is None else np.asarray(value, np.float64)
    flags = np.zeros(len(ts), np.int16) if flags is None else flags
    lane = None if lane is None else np.asarray(lane, np.int16)
    return w.observe(source, slot, ts, value, flags, int(wall_s * S), lane=lane), flags


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


def test_a_lagging_lane_is_judged_by_its_own_watermark() -> None:
    """Kafka partitions drain at different paces: lane 1, 15 minutes behind lane 0 in event
    time, is neither flagged late nor closed by lane 0's watermark."""
    w = state(allowed_lateness_s=30)
    w.assign(np.arange(4), ["a"] * 4, now_wall_us=0)
    obs, flags = feed(w, [0, 1, 2, 3, 0], [1000, 1001, 100, 101, 1090], lane=[0, 0, 1, 1, 0])
    assert flags.tolist() == [0] * 5 and obs.late == 0
    # slot 0's window by its later reading, slot 1's by lane 0's watermark 1090 >= 1020 + 30;
    # lane 1's windows [60, 120) stay open: their stream has only reached 101
    assert rows(obs.closed) == [(0, 960, 1, 0.0), (1, 960, 1, 1.0)]
    assert obs.watermark_us == T0 + 1090 * S
    assert w.watermark("mqtt", 0) == w.watermark("mqtt") == T0 + 1090 * S
    assert w.watermark("mqtt", 1) == T0 + 101 * S and w.watermark("mqtt", 2) is None
    # lane 1 moves on: its own watermark flags 115 late and closes slot 2's window
    obs, flags = feed(w, [2, 3, 2], [110, 150, 115], value=[5, 6, 7], lane=[1, 1, 1])
    assert flags.tolist() == [0, 0, int(Flag.LATE)]
    assert rows(obs.closed) == [(2, 60, 2, 3.5), (3, 60, 1, 3.0)]
    assert obs.watermark_us == T0 + 150 * S
    assert w.event_now(np.array([0, 2])).tolist() == [T0 + 1090 * S, T0 + 150 * S]


def test_bad_lanes_and_slots_are_rejected_before_anything_changes() -> None:
    w = state()
    w.assign(np.arange(2), ["a"] * 2, now_wall_us=0)
    with pytest.raises(ValueError):
        feed(w, [0, 1], [1, 2], lane=[0, -1])
    with pytest.raises(IndexError):
        feed(w, [0, w.capacity], [1, 2])
    assert w.watermark("mqtt") is None and not w.open.any()


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


def test_capacity_grows_by_a_quarter_and_bytes_per_slot_are_reported() -> None:
    w = state()
    w.ensure_capacity(100)
    assert w.capacity == 100
    w.ensure_capacity(101)
    assert w.capacity == 125  # a quarter more (capacity.py), not double
    w.ensure_capacity(120)
    assert w.capacity == 125
    w.ensure_capacity(400)
    assert w.capacity == 400  # a bigger need is met at once
    assert 64 <= w.nbytes_per_slot() <= 128


def test_eviction_must_not_come_before_windows_close() -> None:
    with pytest.raises(ValidationError):
        WindowSettings(size_s=600, allowed_lateness_s=60, evict_after_s=300)
    with pytest.raises(ValidationError):
        WindowSettings(sizes={"rain": 0.1})


def _stream(seed: int, n_series: int = 40, n: int = 20_000, n_lanes: int = 1, hop: float = 0.0,
            span_s: int = 3 * 3600, jitter_s: int = 20):
    """Interleaved series over ``span_s``, mostly in order, with jitter and a few readings minutes late.

    With lanes, series keep to lane ``slot % n_lanes`` (a Kafka key keeps its partition) and lane
    l trails lane 0 by l * 7 minutes of event time; a fraction ``hop`` of the readings come on
    another lane, in that lane's time, and a few values are NaN.
    """
    rng = np.random.default_rng(seed)
    slot = rng.integers(0, n_series, n).astype(np.int32)
    lane = (slot % n_lanes).astype(np.int16)
    if hop:
        moved = rng.random(n) < hop
        lane[moved] = rng.integers(0, n_lanes, moved.sum())
    ts = T0 + np.sort(rng.integers(0, span_s, n)).astype(np.int64) * S + rng.integers(0, S, n)
    ts -= lane.astype(np.int64) * 420 * S
    ts += rng.integers(-jitter_s, jitter_s, n) * S  # out of order within the lateness
    late = rng.random(n) < 0.01
    ts[late] -= rng.integers(120, 600, late.sum()) * S  # beyond it
    dup = rng.random(n) < 0.005  # exact re-sends
    for a in (ts, slot, lane):
        a[1:][dup[1:]] = a[:-1][dup[1:]]
    value = rng.normal(20, 5, n)
    if hop:
        value[rng.random(n) < 0.002] = np.nan
    return slot, ts, value, lane


def _cuts(rng: np.random.Generator, n: int, high: int = 700) -> np.ndarray:
    """Random batch boundaries 0 = b0 < b1 < ... = n (batch sizes 1..high-1)."""
    bounds = np.cumsum(rng.integers(1, high, n))
    return np.concatenate([[0], bounds[bounds < n], [n]])


@pytest.mark.parametrize("seed, n_series, n_lanes", [(1, 40, 1), (2, 40, 1), (3, 200, 4)])
def test_closed_windows_do_not_depend_on_batch_boundaries(seed: int, n_series: int, n_lanes: int) -> None:
    slot, ts, value, lane = _stream(seed, n_series, n_lanes=n_lanes)
    n = len(ts)
    results = []
    rng = np.random.default_rng(seed + 100)
    for cuts in ([n], [n // 2, n - n // 2], None):
        # random batch sizes, some of a single reading
        bounds = _cuts(rng, n) if cuts is None else np.concatenate([[0], np.cumsum(cuts)])
        w = state(allowed_lateness_s=60)
        w.assign(np.arange(n_series), ["a"] * n_series, now_wall_us=0)
        flags = np.zeros(n, np.int16)
        closed = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            f = flags[a:b]
            lanes = lane[a:b] if n_lanes > 1 else None
            closed.append(w.observe("kafka", slot[a:b], ts[a:b], value[a:b], f, 0, lane=lanes).closed)
        closed.append(w.close_idle(10**18))
        c = ClosedWindows.concat(closed)
        order = np.lexsort((c.start_us, c.slot))
        results.append((c, order, flags.copy(), dict(w.counters)))
    ref, ref_order, ref_flags, ref_counters = results[0]
    assert ref_counters["late_beyond_lateness"] > 0 and ref_counters["late_within_lateness"] > 0
    assert ref_counters["late_beyond_lateness"] < 0.05 * n  # lagging lanes are not late
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


class Reference:
    """The contract of state.py, reading by reading in plain Python (dicts and floats)."""

    def __init__(self, size_of: dict[int, int], lateness_us: int) -> None:
        self.size_of, self.lateness = size_of, lateness_us
        self.wm: dict[tuple[str, int], int] = {}  # per (source, lane)
        self.stream: dict[int, tuple[str, int]] = {}  # per slot: (source, lane) of its latest reading
        self.newest: dict[int, int] = {}  # per slot: newest on-time event time
        self.wall: dict[int, int] = {}
        self.bucket: dict[int, int] = {}  # current window's interval, open or closed
        self.win: dict[int, dict] = {}  # open windows
        self.counters = {"late_within_lateness": 0, "late_beyond_lateness": 0}

    def observe(self, source: str, slots, ts, values, lanes, now: int) -> tuple[list[bool], list[tuple], int]:
        flags, closed, touched = [], [], set()
        for sl, t, x, lane in zip(slots, ts, values, lanes):
            key = (source, lane)
            touched.add(key)
            late = key in self.wm and t < self.wm[key] - self.lateness
            self.wm[key] = max(self.wm.get(key, t), t)
            flags.append(late)
            if late:
                self.counters["late_beyond_lateness"] += 1
            else:
                b = t // self.size_of[sl]
                if t > self.newest.get(sl, t - 1) and (sl in self.win or b > self.bucket.get(sl, b - 1)):
                    if sl in self.win and b != self.bucket[sl]:
                        closed.append(self._close(sl))
                    if sl not in self.win:
                        self.win[sl] = {"n": 0, "mean": 0.0, "m2": 0.0, "min": x, "max": x, "first": x}
                        self.bucket[sl] = b
                    w = self.win[sl]
                    w["n"] += 1
                    delta = x - w["mean"]
                    w["mean"] += delta / w["n"]
                    w["m2"] += delta * (x - w["mean"])
                    w["min"], w["max"], w["last"] = _nan_or(min, w["min"], x), _nan_or(max, w["max"], x), x
                else:
                    self.counters["late_within_lateness"] += 1
                self.newest[sl] = max(self.newest.get(sl, t), t)
            self.wall[sl], self.stream[sl] = now, key
        for sl in sorted(self.win):
            key = self.stream[sl]
            if key in touched and self.wm[key] >= (self.bucket[sl] + 1) * self.size_of[sl] + self.lateness:
                closed.append(self._close(sl))
        return flags, sorted(closed, key=lambda c: (c[2], c[0])), max(self.wm[k] for k in touched)

    def close_idle(self, now: int) -> list[tuple]:
        idle = [sl for sl in sorted(self.win) if now - self.wall[sl] > self.size_of[sl] + self.lateness]
        return [self._close(sl) for sl in idle]

    def _close(self, sl: int) -> tuple:
        w, start = self.win.pop(sl), self.bucket[sl] * self.size_of[sl]
        std = math.sqrt(max(w["m2"], 0.0) / (w["n"] - 1)) if w["n"] > 1 else math.nan
        return sl, start, start + self.size_of[sl], w["n"], w["mean"], w["min"], w["max"], std, w["first"], w["last"]


def _nan_or(op, a: float, b: float) -> float:  # noqa: ANN001
    """``op`` (min / max) with NaN winning, as np.minimum / np.maximum."""
    return a if a != a else b if b != b else op(a, b)


def _assert_same_windows(got: ClosedWindows, want: list[tuple]) -> None:
    names = ("slot", "start_us", "end_us", "count", "mean", "min", "max", "std", "first", "last")
    ref = dict(zip(names, (np.array(col) for col in zip(*want)))) if want else None
    assert len(got) == len(want)
    for name in names if want else ():
        if name in ("mean", "std"):
            np.testing.assert_allclose(getattr(got, name), ref[name], rtol=1e-12, err_msg=name)
        else:
            np.testing.assert_array_equal(getattr(got, name), ref[name], err_msg=name)


@pytest.mark.parametrize("seed", [5, 6])
def test_the_kernel_equals_a_reading_by_reading_reference(seed: int) -> None:
    """Several hundred series on 4 lanes that drain at different paces, some readings on another
    lane than their series' own, out of order, far late, re-sent, NaN; two sources (mqtt has no
    lanes), two window sizes, random batch cuts, idle closes in between."""
    n_series = 300
    slot, ts, value, lane = _stream(seed, n_series, n=60_000, n_lanes=4, hop=0.002, span_s=1800, jitter_s=3)
    metrics = ["rain" if s % 5 == 0 else "a" for s in range(n_series)]
    w = state(sizes={"rain": 300}, allowed_lateness_s=60)
    w.assign(np.arange(n_series), metrics, now_wall_us=0)
    ref = Reference({s: w.settings.size_us(m) for s, m in enumerate(metrics)}, w.lateness_us)
    rng = np.random.default_rng(seed)
    bounds = _cuts(rng, len(ts), high=300)
    flags = np.zeros(len(ts), np.int16)
    n_idle = 0
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        now = k * 10 * S
        kafka = rng.random() < 0.8
        lanes = lane[a:b] if kafka else None
        obs = w.observe("kafka" if kafka else "mqtt", slot[a:b], ts[a:b], value[a:b], flags[a:b], now, lane=lanes)
        want_flags, want, want_wm = ref.observe("kafka" if kafka else "mqtt", slot[a:b].tolist(), ts[a:b].tolist(),
                                                value[a:b].tolist(), [0] * (b - a) if lanes is None else lanes.tolist(),
                                                now)
        assert (flags[a:b] == int(Flag.LATE)).tolist() == want_flags
        assert obs.late == sum(want_flags) and obs.watermark_us == want_wm
        _assert_same_windows(obs.closed, want)
        if k % 7 == 0:
            idle = ref.close_idle(now)
            n_idle += len(idle)
            _assert_same_windows(w.close_idle(now), idle)
    assert w.counters == ref.counters
    assert n_idle > 0 and ref.counters["late_within_lateness"] > 0 and ref.counters["late_beyond_lateness"] > 0
    for (source, ln), wm in ref.wm.items():
        assert w.watermark(source, ln) == wm
    streams = [ref.stream.get(s) for s in range(n_series)]
    assert w.event_now(np.arange(n_series)).tolist() == [ref.wm[k] if k else NONE for k in streams]
    _assert_same_windows(w.close_idle(10**18), ref.close_idle(10**18))
