"""Numba kernel of WindowState.observe: one batch, reading by reading in arrival order.

Why a kernel: observe runs on a worker thread while the asyncio loop decodes Kafka messages on
the main thread. The contract in `state.py` is a per-reading state machine; written as that
scalar loop it touches each reading once, allocates nothing per reading and runs without the
GIL (nogil), where the numpy form needed several sorts and dozens of numpy calls per batch, each
a point where the GIL is taken back.

Rules kept here:
- no fastmath: Welford's updates must not be reassociated or contracted;
- error_model="numpy": no zero-division checks in the loop (no divisor here can be zero: a
  count is at least 1 where divided by, window sizes at least 1 s);
- `_min` / `_max` (kernel_math) propagate NaN as np.minimum / np.maximum do;
- the loop indexes without bounds checks, so `_check` rejects bad slots and lanes before any
  state changes;
- the helpers on the per-reading path (`_deadline`, `_start`, `_add`) take arrays one by one:
  unpacking the state tuples in a helper costs a reference count update per array, which per
  reading was several times the rest of the loop (`_emit`, once per closed window, may).

Per-slot state comes in as two tuples of arrays (`slots`: size_us, bucket, open, stream,
last_event_us, last_wall_us; `win`: the Moments fields in their declared order), closed windows
go out into preallocated arrays (`out`: slot; start, end, count; mean, min, max, std, first,
last) of which the first n_closed entries are written, ordered by (end, slot).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from urbanpulse.kernel_math import nan_max as _max
from urbanpulse.kernel_math import nan_min as _min
from urbanpulse.model import Flag

#: "no deadline": the due time of a stream with no open window
NEVER = np.iinfo(np.int64).max
_LATE = int(Flag.LATE)


@njit(cache=True, nogil=True, error_model="numpy")
def _check(slot, ts, value, flags, lane, lane_stream, n_slots):
    """Raise before the batch changes anything if an index would fall outside the arrays.

    ``flags`` may be longer than the batch (only its first entries are the batch's), as the
    numpy version allowed."""
    n = len(slot)
    if len(ts) != n or len(value) != n or len(flags) < n or (len(lane) != 0 and len(lane) != n):
        raise ValueError("slot, ts_us, value and lane must have one entry per reading, flags at least one")
    for i in range(n):
        if slot[i] < 0 or slot[i] >= n_slots:
            raise IndexError("slot outside the window state")
    for i in range(len(lane)):
        if lane[i] < 0 or lane[i] >= len(lane_stream):
            raise ValueError("lanes must be non-negative integers")


@njit(cache=True, nogil=True, error_model="numpy")
def _deadline(s, size_us, bucket, lateness_us):
    """End + allowed lateness of slot s's current window: the watermark that closes it."""
    return (bucket[s] + 1) * size_us[s] + lateness_us


@njit(cache=True, nogil=True, error_model="numpy")
def _emit(s, slots, win, out, j):
    """Close slot s's open window into output row j; returns the next free row."""
    size_us, bucket, is_open = slots[0], slots[1], slots[2]
    count, mean, m2, lo, hi, first, last = win[0], win[1], win[2], win[3], win[4], win[6], win[8]
    out_slot, out_int, out_float = out
    start = bucket[s] * size_us[s]
    c = count[s]
    out_slot[j] = s
    out_int[0, j] = start
    out_int[1, j] = start + size_us[s]
    out_int[2, j] = c
    out_float[0, j] = mean[s]
    out_float[1, j] = lo[s]
    out_float[2, j] = hi[s]
    out_float[3, j] = np.sqrt(_max(m2[s], 0.0) / (c - 1)) if c > 1 else np.nan  # as Moments.std
    out_float[4, j] = first[s]
    out_float[5, j] = last[s]
    is_open[s] = False
    return j + 1


@njit(cache=True, nogil=True, error_model="numpy")
def _start(s, b, t, x, bucket, is_open, count, mean, m2, lo, hi, first_ts, first):
    """Open slot s's window for bucket b with the reading (t, x) as its first."""
    is_open[s] = True
    bucket[s] = b
    count[s] = 0
    mean[s] = 0.0
    m2[s] = 0.0
    lo[s] = x
    hi[s] = x
    first_ts[s] = t
    first[s] = x


@njit(cache=True, nogil=True, error_model="numpy")
def _add(s, t, x, count, mean, m2, lo, hi, last_ts, last):
    """Welford's update of slot s's window with the reading (t, x)."""
    count[s] += 1
    delta = x - mean[s]
    mean[s] += delta / count[s]
    m2[s] += delta * (x - mean[s])
    lo[s] = _min(lo[s], x)
    hi[s] = _max(hi[s], x)
    last_ts[s] = t
    last[s] = x


@njit(cache=True, nogil=True, error_model="numpy")
def _close_due(touched, watermark, due, lateness_us, slots, win, out, j):
    """Close the open windows of series on a touched stream whose watermark reached end + lateness.

    ``due[k]`` is a lower bound of end + lateness over stream k's open windows, so the slots are
    scanned only when a touched stream's watermark reached it (about once per window length),
    not on every batch; the scan sets it to the exact minimum of the windows left open.
    """
    size_us, bucket, is_open, stream = slots[0], slots[1], slots[2], slots[3]
    scan = False
    for k in range(len(touched)):
        touched[k] = touched[k] and watermark[k] >= due[k]
        if touched[k]:
            due[k] = NEVER
            scan = True
    if not scan:
        return j
    for s in range(len(is_open)):
        k = stream[s]
        if is_open[s] and k >= 0 and touched[k]:
            d = _deadline(s, size_us, bucket, lateness_us)
            if watermark[k] >= d:
                j = _emit(s, slots, win, out, j)
            elif d < due[k]:
                due[k] = d
    return j


@njit(cache=True, nogil=True, error_model="numpy")
def _ordered(out_slot, end, m):
    """Already in (end, slot) order? (A batch that closes at most one window, or only by the
    watermark of a single window size, needs no sort.)"""
    for j in range(1, m):
        if end[j] < end[j - 1] or (end[j] == end[j - 1] and out_slot[j] < out_slot[j - 1]):
            return False
    return True


@njit(cache=True, nogil=True, error_model="numpy")
def _order(out, m):
    """Sort the first m closed windows by (end, slot), the order ClosedWindows.concat gives."""
    out_slot, out_int, out_float = out
    if _ordered(out_slot, out_int[1], m):
        return
    # a batch closes a slot's window of a given end at most once: no ties, no stable sort needed
    end = out_int[1]
    o = np.argsort(end[:m])
    a = 0
    while a < m:  # within each run of equal ends, by slot
        b = a + 1
        while b < m and end[o[b]] == end[o[a]]:
            b += 1
        if b - a > 1:
            run = o[a:b]
            o[a:b] = run[np.argsort(out_slot[run])]
        a = b
    out_slot[:m] = out_slot[o]
    out_int[:, :m] = out_int[:, o]
    out_float[:, :m] = out_float[:, o]


@njit(cache=True, nogil=True, error_model="numpy")
def observe(slot, ts, value, flags, lane, lane_stream, now_wall_us, lateness_us, watermark, due, slots, win, out):
    """Take one batch in arrival order (the contract in state.py); updates the state in place.

    ``lane``: per reading, or empty for "every reading on lane 0"; ``lane_stream`` maps the
    source's lanes to stream indices into ``watermark`` and ``due``. Returns (closed windows
    written to ``out``, readings flagged late, on-time readings no window took, the newest
    watermark among the streams the batch touched).
    """
    _check(slot, ts, value, flags, lane, lane_stream, len(slots[0]))
    size_us, bucket, is_open, stream, last_event_us, last_wall_us = slots
    count, mean, m2, lo, hi, first_ts, first, last_ts, last = win
    touched = np.zeros(len(watermark), np.bool_)
    newest = -NEVER  # below any watermark; every reading raises it
    j = 0
    n_late = 0
    n_within = 0
    for i in range(len(slot)):
        s = slot[i]
        k = lane_stream[lane[i]] if len(lane) else lane_stream[0]
        t = ts[i]
        touched[k] = True
        wm = watermark[k]
        if t < wm - lateness_us:
            flags[i] |= _LATE
            n_late += 1
        else:
            # on time: a window takes it only if newer than every on-time reading of the series
            # and for its current interval or a later one (a closed window never reopens)
            b = t // size_us[s]
            if t > last_event_us[s] and (is_open[s] or b > bucket[s]):
                if is_open[s] and b != bucket[s]:  # a later interval: the open window is done
                    j = _emit(s, slots, win, out, j)
                if not is_open[s]:
                    _start(s, b, t, value[i], bucket, is_open, count, mean, m2, lo, hi, first_ts, first)
                _add(s, t, value[i], count, mean, m2, lo, hi, last_ts, last)
            else:
                n_within += 1
            if t > last_event_us[s]:
                last_event_us[s] = t
        if t > wm:
            watermark[k] = t
        newest = max(newest, watermark[k])
        last_wall_us[s] = now_wall_us
        stream[s] = k
        if is_open[s]:  # keep due[k] a lower bound of its open windows' deadlines
            due[k] = min(due[k], _deadline(s, size_us, bucket, lateness_us))
    j = _close_due(touched, watermark, due, lateness_us, slots, win, out, j)
    _order(out, j)
    return j, n_late, n_within, newest
