"""Grouped streaming moments in numpy: the arithmetic shared by windows and rollups.

A group's summary is (count, mean, M2, min, max, first, last) where M2 is the sum of squared
deviations from the mean. Summaries of disjoint parts of a group combine exactly (Chan,
Golub & LeVeque's parallel variance), which is what lets a window or a rollup row be built
from batches in any split and still equal a recomputation over all its readings.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(slots=True)
class Moments:
    """Per-group summaries, one element per group (parallel arrays)."""

    count: np.ndarray  # int64
    mean: np.ndarray  # float64
    m2: np.ndarray  # float64, sum of squared deviations from mean
    min: np.ndarray
    max: np.ndarray
    first_ts: np.ndarray  # int64 us: earliest event time in the group
    first: np.ndarray  # value at first_ts
    last_ts: np.ndarray  # int64 us: latest event time
    last: np.ndarray

    def __len__(self) -> int:
        return len(self.count)

    def take(self, idx: np.ndarray) -> Moments:
        return Moments(*(getattr(self, f.name)[idx] for f in fields(self)))

    @staticmethod
    def empty() -> Moments:
        i, f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        return Moments(i, f, f, f, f, i, f, i, f)

    def std(self) -> np.ndarray:
        """Sample standard deviation (n - 1); NaN for a single reading."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 1, np.sqrt(np.maximum(self.m2, 0.0) / (self.count - 1)), np.nan)


def group_starts(*sorted_keys: np.ndarray) -> np.ndarray:
    """Start index of every run of equal keys in arrays already sorted by those keys."""
    n = len(sorted_keys[0])
    if n == 0:
        return np.zeros(0, np.int64)
    change = np.zeros(n, bool)
    change[0] = True
    for k in sorted_keys:
        change[1:] |= k[1:] != k[:-1]
    return np.flatnonzero(change)


def moments(starts: np.ndarray, ts_us: np.ndarray, value: np.ndarray) -> Moments:
    """Summaries of the groups beginning at ``starts`` in arrays sorted by (group, ts).

    Two passes (mean, then squared deviations) rather than sum of squares: the latter loses
    everything to cancellation for a pressure series around 1013 hPa varying by 0.1.
    """
    n = len(value)
    if len(starts) == 0:
        return Moments.empty()
    count = np.diff(np.append(starts, n)).astype(np.int64)
    mean = np.add.reduceat(value, starts) / count
    dev = value - np.repeat(mean, count)
    m2 = np.add.reduceat(dev * dev, starts)
    ends = starts + count - 1
    return Moments(count, mean, m2, np.minimum.reduceat(value, starts), np.maximum.reduceat(value, starts),
                   ts_us[starts], value[starts], ts_us[ends], value[ends])


def combine(a: Moments, b: Moments) -> Moments:
    """Element-wise union of two summaries of disjoint reading sets (Chan et al.).

    Elements where one side has count 0 come out as the other side.
    """
    n = a.count + b.count
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = b.mean - a.mean
        wb = np.where(n > 0, b.count / np.maximum(n, 1), 0.0)
        mean = np.where(a.count == 0, b.mean, np.where(b.count == 0, a.mean, a.mean + delta * wb))
        m2 = a.m2 + b.m2 + np.where((a.count > 0) & (b.count > 0), delta * delta * a.count * wb, 0.0)
    a_first = (a.count > 0) & ((b.count == 0) | (a.first_ts <= b.first_ts))
    a_last = (a.count > 0) & ((b.count == 0) | (a.last_ts >= b.last_ts))
    return Moments(
        count=n, mean=mean, m2=m2,
        min=np.where(a.count == 0, b.min, np.where(b.count == 0, a.min, np.minimum(a.min, b.min))),
        max=np.where(a.count == 0, b.max, np.where(b.count == 0, a.max, np.maximum(a.max, b.max))),
        first_ts=np.where(a_first, a.first_ts, b.first_ts), first=np.where(a_first, a.first, b.first),
        last_ts=np.where(a_last, a.last_ts, b.last_ts), last=np.where(a_last, a.last, b.last),
    )


def merge_runs(starts: np.ndarray, m: Moments) -> Moments:
    """Merge runs of summaries (runs begin at ``starts``; each run ordered by time) into one each.

    The k-way form of Chan's formula: M2 = sum(M2_i) + sum(n_i (mean_i - mean)^2).
    """
    if len(starts) == 0:
        return Moments.empty()
    k = len(m)
    sizes = np.diff(np.append(starts, k))
    count = np.add.reduceat(m.count, starts)
    mean = np.add.reduceat(m.count * m.mean, starts) / count
    dev = m.mean - np.repeat(mean, sizes)
    m2 = np.add.reduceat(m.m2 + m.count * dev * dev, starts)
    # first/last by event time, not by position: runs need not be time-ordered
    first_idx = _arg_reduce(starts, sizes, m.first_ts, np.minimum)
    last_idx = _arg_reduce(starts, sizes, m.last_ts, np.maximum)
    return Moments(count, mean, m2, np.minimum.reduceat(m.min, starts), np.maximum.reduceat(m.max, starts),
                   m.first_ts[first_idx], m.first[first_idx], m.last_ts[last_idx], m.last[last_idx])


def _arg_reduce(starts: np.ndarray, sizes: np.ndarray, key: np.ndarray, op: np.ufunc) -> np.ndarray:
    """Index of the element where ``op`` (minimum/maximum) of ``key`` is reached, per run."""
    best = op.reduceat(key, starts)
    hit = key == np.repeat(best, sizes)
    pos = np.arange(len(key))
    # the first hit in each run: min position among hits (non-hits pushed past the end)
    return np.minimum.reduceat(np.where(hit, pos, len(key)), starts)
