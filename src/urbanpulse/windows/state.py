"""Per-series tumbling windows and per-stream watermarks, as numpy arrays indexed by slot.

Contract (what the lead and the alert manager rely on):

* Lateness is judged per *stream*: a (source, lane) pair, where a lane is an ordered sub-stream
  of the source (a Kafka partition; readings given without lanes are lane 0). Partitions drain
  at different paces, so each stream has its own watermark: the newest event time seen on it,
  advanced reading by reading in arrival order. A reading older than its stream's
  ``watermark - allowed_lateness`` gets ``Flag.LATE`` in the caller's ``flags`` array. Late
  readings are still stored and still update their rollup; windows ignore them.
* A series belongs to the stream of its latest reading: its event-time "now"
  (:meth:`WindowState.event_now`) and the watermark that closes its window are that stream's.
* Each series has one window open at a time. A window holds the series' on-time readings of
  one tumbling interval ``[start, start + size)``. It closes, and is returned exactly once in
  a :class:`ClosedWindows`, when
    - the series gets an on-time reading for a later interval (the same batch included);
    - at the end of a batch that touched the series' stream, that stream's watermark has
      reached ``end + allowed_lateness``;
    - the series has sent nothing for ``size + allowed_lateness`` of wall-clock time
      (:meth:`WindowState.close_idle`), so a silent sensor cannot keep a window open.
* A window takes a reading only if it is on time and newer than every on-time reading the
  series sent before it (on any lane), which is also what the detectors score. An on-time
  reading that is not (re-sent, out of order, or for a window already closed) is counted as
  ``late_within_lateness``: it is stored and goes to the rollup, but never enters or reopens
  a window. ``late_beyond_lateness`` counts the LATE-flagged ones.
* Readings are taken in arrival order, so the closed windows do not depend on how the
  stream was cut into batches (only the moment a window is *reported* does), as long as each
  series keeps to one stream (a Kafka key keeps its partition): a series that moves to a
  lagging stream could otherwise send, right after a batch end closed its window, a reading
  the window would have taken within one batch.

:meth:`WindowState.observe` runs as a Numba kernel (``_kernel.py``) that releases the GIL, so
it can run on a worker thread while the event loop keeps decoding messages.

Memory: :meth:`WindowState.nbytes_per_slot` bytes per slot, arrays grown by doubling, plus
16 bytes per stream. Slots are dense ints handed out by the caller; ``max_series`` is enforced
by the caller evicting :meth:`WindowState.least_recently_seen` slots before it assigns new ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

import numpy as np

from urbanpulse.capacity import grown
from urbanpulse.windows.aggregate import Moments
from urbanpulse.windows.settings import WindowSettings

#: "no value" for int64 times and buckets; far from overflow when sizes are added to it
NONE = np.int64(-(2**62))
#: "no deadline": the due time of a stream with no open window (the kernel's NEVER)
NEVER = np.iinfo(np.int64).max
#: the ``lane`` given to the kernel for a batch without lanes: every reading on lane 0
_LANE_ZERO = np.zeros(0, np.int64)

_KERNEL = None


def _kernel():  # noqa: ANN202
    """The compiled kernel (on first use: built ahead of time, urbanpulse/aot.py, else Numba's),
    warmed up so the first real batch does not pay for compiling or loading the machine code."""
    global _KERNEL
    if _KERNEL is None:
        from urbanpulse import aot

        k = aot.kernel("urbanpulse.windows._kernel")

        _KERNEL = k  # before the warm-up, which builds a WindowState
        w = WindowState(WindowSettings())
        w.assign(np.zeros(1, np.int64), ["warm-up"], now_wall_us=0)
        w.observe("warm-up", np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1), np.zeros(1, np.int16), 0,
                  lane=np.zeros(1, np.int64))
    return _KERNEL


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
    watermark_us: int  # the newest watermark among the streams the batch touched (NONE for no readings)


class WindowState:
    """Tumbling windows of every active series, structure of arrays indexed by slot."""

    def __init__(self, settings: WindowSettings) -> None:
        self.settings = settings
        self.lateness_us = int(round(settings.allowed_lateness_s * 1_000_000))
        self.evict_after_us = int(round(settings.evict_after_s * 1_000_000))
        self.capacity = 0
        self.counters = {"late_within_lateness": 0, "late_beyond_lateness": 0}
        # per stream, a (source, lane): its watermark, and a lower bound of end + lateness over
        # the open windows of its series (the watermark close scans the slots only past it)
        self._lane_streams: dict[str, np.ndarray] = {}  # source -> stream index per lane (int32)
        self._n_streams = 0
        self._stream_source: list[str] = []  # stream index -> source name (rebuilt when streams are added)
        self._watermark = np.full(4, NONE, np.int64)
        self._due = np.full(4, NEVER, np.int64)
        self._size_of: dict[str, int] = {}
        # per slot
        self.size_us = np.zeros(0, np.int64)
        self.bucket = np.zeros(0, np.int64)  # current window = [bucket*size, (bucket+1)*size)
        self.open = np.zeros(0, bool)
        self.in_use = np.zeros(0, bool)
        self.source = np.zeros(0, np.int32)  # stream of the series' latest reading
        self.last_event_us = np.zeros(0, np.int64)  # newest on-time event time of the series
        self.last_wall_us = np.zeros(0, np.int64)
        self.win = Moments.empty()  # running summary of the open window
        _kernel()  # compile / load the kernel now, not on the first batch

    # -- slots ------------------------------------------------------------------------------

    def ensure_capacity(self, n_slots: int) -> None:
        """Room for slots 0..n_slots-1 (growing by a quarter, capacity.py: amortised O(1) per slot)."""
        if n_slots <= self.capacity:
            return
        new = grown(n_slots, self.capacity, 64)
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

    def watermark(self, source: str, lane: int = 0) -> int | None:
        """Newest event time seen on that lane of ``source`` (us), None before its first reading."""
        streams = self._lane_streams.get(source)
        if streams is None or not 0 <= lane < len(streams):
            return None
        wm = self._watermark[streams[lane]]
        return None if wm == NONE else int(wm)

    def event_now(self, slots: np.ndarray) -> np.ndarray:
        """Per slot, the watermark of the stream it last came from (event-time 'now')."""
        src = self.source[slots]
        return np.where(src >= 0, self._watermark[np.maximum(src, 0)], NONE)

    def source_names(self, slots: np.ndarray) -> list[str]:
        """Per slot, the name of the source its latest reading came from ("" before any): what
        groups a whole source going quiet into one silence incident."""
        names = self._stream_source
        if len(names) != self._n_streams:
            names = [""] * self._n_streams
            for source, streams in self._lane_streams.items():
                for k in streams.tolist():
                    names[k] = source
            self._stream_source = names
        src = self.source[np.asarray(slots, np.int64)]
        return [names[k] if k >= 0 else "" for k in src.tolist()]

    def _streams(self, source: str, n_lanes: int) -> np.ndarray:
        """Stream index (int32) of each lane of ``source``, lanes 0..n_lanes-1 at least.

        A lane gets its stream on first sight, together with the source's lower lanes that have
        none yet: lanes are small ints, and an index array per source keeps the mapping of a
        batch's readings a lookup in the kernel instead of a grouping in Python.
        """
        streams = self._lane_streams.get(source)
        have = 0 if streams is None else len(streams)
        if have >= n_lanes:
            return streams
        first = self._n_streams
        self._n_streams += n_lanes - have
        if self._n_streams > len(self._watermark):
            grow = max(self._n_streams, 2 * len(self._watermark)) - len(self._watermark)
            self._watermark = np.concatenate([self._watermark, np.full(grow, NONE)])
            self._due = np.concatenate([self._due, np.full(grow, NEVER)])
        new = np.arange(first, self._n_streams, dtype=np.int32)
        streams = self._lane_streams[source] = new if streams is None else np.concatenate([streams, new])
        return streams

    # -- the batch ----------------------------------------------------------------------------

    def observe(self, source: str, slot: np.ndarray, ts_us: np.ndarray, value: np.ndarray, flags: np.ndarray,
                now_wall_us: int, lane: np.ndarray | None = None) -> Observed:
        """Take one batch in arrival order: flag late readings, update windows, close windows.

        ``slot`` must be assigned slots; ``flags`` (int16) gets ``Flag.LATE`` set in place.
        ``lane`` (optional, any int dtype, small non-negative ints): each reading's ordered
        sub-stream of ``source``, e.g. its Kafka partition; None (or empty) puts every reading
        on lane 0.
        Returns the windows this batch closed (by later readings or by the watermark).
        """
        n = len(ts_us)
        if n == 0:
            return Observed(ClosedWindows.empty(), 0, 0, int(NONE))
        lane = _LANE_ZERO if lane is None else np.asarray(lane, np.int64)
        streams = self._streams(source, int(lane.max()) + 1 if len(lane) else 1)
        # each reading closes at most one window, the watermark at most every open one
        room = n + int(np.count_nonzero(self.open))
        out = (np.empty(room, np.int32), np.empty((3, room), np.int64), np.empty((6, room), np.float64))
        n_closed, n_late, n_within, newest = _kernel().observe(
            np.asarray(slot, np.int64), np.asarray(ts_us, np.int64), np.asarray(value, np.float64), flags, lane,
            streams, now_wall_us, self.lateness_us, self._watermark, self._due,
            (self.size_us, self.bucket, self.open, self.source, self.last_event_us, self.last_wall_us),
            tuple(getattr(self.win, f.name) for f in fields(Moments)), out)
        self.counters["late_beyond_lateness"] += n_late
        self.counters["late_within_lateness"] += n_within
        out_slot, out_int, out_float = out
        closed = ClosedWindows(out_slot[:n_closed], *out_int[:, :n_closed], *out_float[:, :n_closed])
        return Observed(closed, n_late, n_within, newest)

    def close_idle(self, now_wall_us: int) -> ClosedWindows:
        """Close the open windows of series that sent nothing for ``size + lateness`` (wall clock)."""
        idle = np.flatnonzero(self.open & (now_wall_us - self.last_wall_us > self.size_us + self.lateness_us))
        return self._close(idle)

    # -- internals ------------------------------------------------------------------------------

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
