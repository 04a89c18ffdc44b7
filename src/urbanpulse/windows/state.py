"""Per-series tumbling windows and per-source watermarks, as numpy arrays indexed by slot.

Contract (what the lead and the alert manager rely on):

* Lateness is judged per *source* (mqtt, kafka, ...): the source watermark is the newest event
  time seen on it, advanced reading by reading in arrival order. A reading older than
  ``watermark - allowed_lateness`` gets ``Flag.LATE`` in the caller's ``flags`` array. Late
  readings are still stored and still update their rollup; windows ignore them.
* Each series has one window open at a time. A window holds the series' on-time readings of
  one tumbling interval ``[start, start + size)``. It closes, and is returned exactly once in
  a :class:`ClosedWindows`, when
    - the series gets an on-time reading for a later interval (the same batch included);
    - the source watermark passes ``end + allowed_lateness``;
    - the series has sent nothing for ``size + allowed_lateness`` of wall-clock time
      (:meth:`WindowState.close_idle`), so a silent sensor cannot keep a window open.
* A window takes a reading only if it is on time and newer than every on-time reading the
  series sent before it, which is also what the detectors score. An on-time reading that is
  not (re-sent, out of order, or for a window already closed) is counted as
  ``late_within_lateness``: it is stored and goes to the rollup, but never enters or reopens
  a window. ``late_beyond_lateness`` counts the LATE-flagged ones.
* Readings are taken in arrival order, so the closed windows do not depend on how the
  stream was cut into batches (only the moment a window is *reported* does).

Memory: :meth:`WindowState.nbytes_per_slot` bytes per slot, arrays grown by doubling.
Slots are dense ints handed out by the caller; ``max_series`` is enforced by the caller
evicting :meth:`WindowState.least_recently_seen` slots before it assigns new ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

import numpy as np

from urbanpulse.model import Flag
from urbanpulse.windows.aggregate import Moments, combine, group_starts, moments
from urbanpulse.windows.settings import WindowSettings

#: "no value" for int64 times and buckets; far from overflow when sizes are added to it
NONE = np.int64(-(2**62))


@dataclass(slots=True)
class ClosedWindows:
    """Windows that closed, one element per window (parallel arrays).

    ``std`` is the sample standard deviation (NaN for a window with one reading).
    """

    slot: np.ndarray  # int32
    start_us: np.ndarray  # int64
    end_us: np.ndarray  # int64, exclusive
    count: np.ndarray  # int64
    mean: np.ndarray
    min: np.ndarray
    max: np.ndarray
    std: np.ndarray
    first: np.ndarray
    last: np.ndarray

    def __len__(self) -> int:
        return len(self.slot)

    @staticmethod
    def empty() -> ClosedWindows:
        return ClosedWindows.build(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64),
                                   Moments.empty())

    @staticmethod
    def build(slot: np.ndarray, start_us: np.ndarray, size_us: np.ndarray, m: Moments) -> ClosedWindows:
        return ClosedWindows(slot.astype(np.int32, copy=False), start_us, start_us + size_us, m.count, m.mean,
                             m.min, m.max, m.std(), m.first, m.last)

    @staticmethod
    def concat(parts: list[ClosedWindows]) -> ClosedWindows:
        """Join, ordered by (end, slot): the order windows finished in event time."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return ClosedWindows.empty()
        out = parts[0] if len(parts) == 1 else ClosedWindows(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(ClosedWindows)))
        order = np.lexsort((out.slot, out.end_us))
        return ClosedWindows(*(getattr(out, f.name)[order] for f in fields(ClosedWindows)))


@dataclass(slots=True)
class Observed:
    """What :meth:`WindowState.observe` did with one batch."""

    closed: ClosedWindows
    late: int  # readings flagged LATE (older than watermark - allowed lateness)
    late_within_lateness: int  # on time by the watermark, but not newer than the series' newest reading
    watermark_us: int  # the source watermark after the batch


class WindowState:
    """Tumbling windows of every active series, structure of arrays indexed by slot."""

    def __init__(self, settings: WindowSettings) -> None:
        self.settings = settings
        self.lateness_us = int(round(settings.allowed_lateness_s * 1_000_000))
        self.evict_after_us = int(round(settings.evict_after_s * 1_000_000))
        self.capacity = 0
        self.counters = {"late_within_lateness": 0, "late_beyond_lateness": 0}
        self._sources: dict[str, int] = {}
        self._watermark = np.full(4, NONE, np.int64)
        self._size_of: dict[str, int] = {}
        # per slot
        self.size_us = np.zeros(0, np.int64)
        self.bucket = np.zeros(0, np.int64)  # current window = [bucket*size, (bucket+1)*size)
        self.open = np.zeros(0, bool)
        self.in_use = np.zeros(0, bool)
        self.source = np.zeros(0, np.int16)  # source of the series' latest reading
        self.last_event_us = np.zeros(0, np.int64)  # newest on-time event time of the series
        self.last_wall_us = np.zeros(0, np.int64)
        self.win = Moments.empty()  # running summary of the open window

    # -- slots ------------------------------------------------------------------------------

    def ensure_capacity(self, n_slots: int) -> None:
        """Room for slots 0..n_slots-1 (doubling, so growth is amortised O(1) per slot)."""
        if n_slots <= self.capacity:
            return
        new = max(n_slots, 2 * self.capacity, 64)
        grow = new - self.capacity

        def ext(a: np.ndarray, fill: object) -> np.ndarray:
            return np.concatenate([a, np.full(grow, fill, a.dtype)])

        self.size_us = ext(self.size_us, 60_000_000)
        self.bucket = ext(self.bucket, NONE)
        self.open = ext(self.open, False)
        self.in_use = ext(self.in_use, False)
        self.source = ext(self.source, -1)
        self.last_event_us = ext(self.last_event_us, NONE)
        self.last_wall_us = ext(self.last_wall_us, NONE)
        self.win = Moments(*(ext(getattr(self.win, f.name), 0) for f in fields(Moments)))
        self.capacity = new

    def assign(self, slots: np.ndarray, metrics: list[str], now_wall_us: int | None = None) -> None:
        """(Re)start these slots empty, with the window size configured for each metric.

        ``now_wall_us`` (default: now) counts as the slot's last activity for eviction.
        """
        slots = np.asarray(slots, np.int64)
        if len(slots) == 0:
            return
        self.ensure_capacity(int(slots.max()) + 1)
        size_of = self._size_of
        for m in set(metrics).difference(size_of):
            size_of[m] = self.settings.size_us(m)
        self._reset(slots)
        self.size_us[slots] = [size_of[m] for m in metrics]
        self.in_use[slots] = True
        self.last_wall_us[slots] = time.time_ns() // 1000 if now_wall_us is None else now_wall_us

    def evict(self, slots: np.ndarray) -> ClosedWindows:
        """Free these slots; their open windows are closed and returned."""
        slots = np.asarray(slots, np.int64)
        closed = self._close(slots[self.open[slots]])
        self._reset(slots)
        return closed

    def evict_idle(self, now_wall_us: int) -> np.ndarray:
        """Free the slots idle (wall clock) for more than ``evict_after_s``; returns them.

        Their windows were already closed by :meth:`close_idle` (``evict_after_s`` is at
        least ``size + lateness``, enforced by the settings); call that first.
        """
        idle = np.flatnonzero(self.in_use & (now_wall_us - self.last_wall_us > self.evict_after_us))
        self._reset(idle)
        return idle.astype(np.int32)

    def least_recently_seen(self, k: int) -> np.ndarray:
        """The ``k`` in-use slots with the oldest last arrival: what to evict beyond max_series."""
        used = np.flatnonzero(self.in_use)
        if k <= 0 or len(used) == 0:
            return np.zeros(0, np.int32)
        if k >= len(used):
            return used.astype(np.int32)
        pick = np.argpartition(self.last_wall_us[used], k - 1)[:k]
        return used[pick].astype(np.int32)

    @property
    def active(self) -> int:
        return int(self.in_use.sum())

    def nbytes_per_slot(self) -> int:
        """Bytes of state per slot (all per-slot arrays)."""
        per = [self.size_us, self.bucket, self.open, self.in_use, self.source, self.last_event_us,
               self.last_wall_us, *(getattr(self.win, f.name) for f in fields(Moments))]
        return sum(a.dtype.itemsize for a in per)

    # -- watermarks ----------------------------------------------------------------------------

    def watermark(self, source: str) -> int | None:
        """Newest event time seen on ``source`` (us), None before its first reading."""
        i = self._sources.get(source)
        return None if i is None or self._watermark[i] == NONE else int(self._watermark[i])

    def event_now(self, slots: np.ndarray) -> np.ndarray:
        """Per slot, the watermark of the source it last came from (event-time 'now')."""
        src = self.source[slots]
        return np.where(src >= 0, self._watermark[np.maximum(src, 0)], NONE)

    def _source_index(self, source: str) -> int:
        i = self._sources.get(source)
        if i is None:
            i = self._sources[source] = len(self._sources)
            if i >= len(self._watermark):
                self._watermark = np.concatenate([self._watermark, np.full(len(self._watermark), NONE)])
        return i

    # -- the batch ----------------------------------------------------------------------------

    def observe(self, source: str, slot: np.ndarray, ts_us: np.ndarray, value: np.ndarray, flags: np.ndarray,
                now_wall_us: int) -> Observed:
        """Take one batch in arrival order: flag late readings, update windows, close windows.

        ``slot`` must be assigned slots; ``flags`` (int16) gets ``Flag.LATE`` set in place.
        Returns the windows this batch closed (by later readings or by the watermark).
        """
        s = self._source_index(source)
        n = len(ts_us)
        if n == 0:
            return Observed(ClosedWindows.empty(), 0, 0, int(self._watermark[s]))
        slot = np.asarray(slot, np.int64)
        run_wm = np.maximum.accumulate(ts_us)
        np.maximum(run_wm, self._watermark[s], out=run_wm)
        late = ts_us < run_wm - self.lateness_us
        n_late = int(late.sum())
        if n_late:
            np.bitwise_or(flags, np.int16(Flag.LATE), out=flags, where=late)
        self._watermark[s] = run_wm[-1]

        # per slot, in arrival order. A window takes a reading only if it is on time and newer
        # than every on-time reading the series sent before it (what the detectors score too):
        # re-sent duplicates and out-of-order readings never enter a window twice or backwards.
        order = np.argsort(slot, kind="stable")
        sl, ts, val, ontime = slot[order], ts_us[order], value[order], ~late[order]
        seg_starts = group_starts(sl)
        seg_len = np.diff(np.append(seg_starts, n))
        seg = np.repeat(np.arange(len(seg_starts), dtype=np.int64), seg_len)
        # newest earlier on-time ts per reading: segmented running max over ts ranks, shifted by one
        uniq, rank = np.unique(ts, return_inverse=True)
        width = len(uniq) + 1
        base = seg * width
        upto = np.maximum.accumulate(base + np.where(ontime, rank.reshape(-1) + 1, 0)) - base - 1
        before = np.empty_like(upto)
        before[1:] = upto[:-1]
        before[seg_starts] = -1
        prev = np.maximum(np.where(before >= 0, uniq[np.maximum(before, 0)], NONE), self.last_event_us[sl])
        bucket = ts // self.size_us[sl]
        accept = ontime & (ts > prev) & ((bucket > self.bucket[sl]) | self.open[sl])
        self.counters["late_beyond_lateness"] += n_late
        n_within = int((ontime & ~accept).sum())
        self.counters["late_within_lateness"] += n_within

        closed = [self._fold(sl[accept], bucket[accept], ts[accept], val[accept])]

        # activity, for idle close and eviction
        seen = sl[seg_starts]
        self.last_wall_us[seen] = now_wall_us
        self.source[seen] = s
        newest = np.maximum.reduceat(np.where(ontime, ts, NONE), seg_starts)
        self.last_event_us[seen] = np.maximum(self.last_event_us[seen], newest)

        # the watermark closes this source's windows whose end + lateness it passed
        cand = np.flatnonzero(self.open & (self.source == s))
        if len(cand):
            end = (self.bucket[cand] + 1) * self.size_us[cand]
            closed.append(self._close(cand[self._watermark[s] >= end + self.lateness_us]))
        return Observed(ClosedWindows.concat(closed), n_late, n_within, int(self._watermark[s]))

    def close_idle(self, now_wall_us: int) -> ClosedWindows:
        """Close the open windows of series that sent nothing for ``size + lateness`` (wall clock)."""
        idle = np.flatnonzero(self.open & (now_wall_us - self.last_wall_us > self.size_us + self.lateness_us))
        return self._close(idle)

    # -- internals ------------------------------------------------------------------------------

    def _fold(self, sl: np.ndarray, bucket: np.ndarray, ts: np.ndarray, val: np.ndarray) -> ClosedWindows:
        """Add accepted readings to their windows; returns the windows they closed."""
        if len(sl) == 0:
            return ClosedWindows.empty()
        # accepted readings of a slot are strictly increasing in ts: (slot, ts) order is arrival order
        o = np.lexsort((ts, sl))
        sl, bucket, ts, val = sl[o], bucket[o], ts[o], val[o]
        starts = group_starts(sl, bucket)
        m = moments(starts, ts, val)
        g_slot, g_bucket = sl[starts], bucket[starts]
        first = np.ones(len(starts), bool)
        first[1:] = g_slot[1:] != g_slot[:-1]
        last = np.ones(len(starts), bool)
        last[:-1] = g_slot[1:] != g_slot[:-1]

        # the open window continues in the batch's first group of its slot, or is superseded
        fs = g_slot[first]
        cont = self.open[fs] & (self.bucket[fs] == g_bucket[first])
        superseded = self._close(fs[self.open[fs] & ~cont])
        gi = np.flatnonzero(first)[cont]
        if len(gi):
            merged = combine(self.win.take(g_slot[gi]), m.take(gi))
            for f in fields(Moments):
                getattr(m, f.name)[gi] = getattr(merged, f.name)

        done = ~last
        closed = ClosedWindows.build(g_slot[done], g_bucket[done] * self.size_us[g_slot[done]],
                                     self.size_us[g_slot[done]], m.take(done))
        ls = g_slot[last]
        self.bucket[ls] = g_bucket[last]
        self.open[ls] = True
        keep = m.take(last)
        for f in fields(Moments):
            getattr(self.win, f.name)[ls] = getattr(keep, f.name)
        return ClosedWindows.concat([superseded, closed])

    def _close(self, slots: np.ndarray) -> ClosedWindows:
        if len(slots) == 0:
            return ClosedWindows.empty()
        size = self.size_us[slots]
        out = ClosedWindows.build(slots, self.bucket[slots] * size, size, self.win.take(slots))
        self.open[slots] = False
        return out

    def _reset(self, slots: np.ndarray) -> None:
        if len(slots) == 0:
            return
        self.in_use[slots] = False
        self.open[slots] = False
        self.bucket[slots] = NONE
        self.source[slots] = -1
        self.last_event_us[slots] = NONE
        self.last_wall_us[slots] = NONE
        for f in fields(Moments):
            getattr(self.win, f.name)[slots] = 0
