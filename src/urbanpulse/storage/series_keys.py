"""SeriesKeys: the (sensor id, metric) of each series id a process has seen, in sorted arrays.

Why not a dict: ``{series id: (sensor, metric)}`` costs a dict entry (~52 bytes at 100,000
series, the table's slack included) and a tuple (56 bytes) per series, on top of the sensor string
itself; with a second dict keyed by the tuple the series registry held ~200 bytes of Python
objects per series (benchmarks/README.md, ``mem27``). Here each series is a sorted int32 id, an
int32 metric code and a reference to its sensor string: 16 bytes. Looking an id up is a binary
search (``numpy.searchsorted``), vectorised for a batch of ids; ids are mostly registered in
increasing order (a ``serial``), so registering appends and a merge is the exception.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from urbanpulse.capacity import grown


class SeriesKeys:
    """(sensor id, metric) per series id; one entry per id (a later :meth:`add` of an id replaces it)."""

    def __init__(self) -> None:
        self._ids = np.zeros(0, np.int32)  # sorted ascending in [:_n]
        self._metric = np.zeros(0, np.int32)  # code into _metric_names, aligned with _ids
        self._sensor: list[str] = []  # aligned with _ids[:_n]
        self._n = 0
        self._metric_names: list[str] = []
        self._metric_code: dict[str, int] = {}

    def __len__(self) -> int:
        return self._n

    def add(self, series_ids: Sequence[int] | np.ndarray, sensors: Sequence[str], metrics: Sequence[str]) -> None:
        """Record these series (ids distinct); an id already held takes its new key."""
        ids = np.asarray(series_ids, np.int64).reshape(-1)
        if not len(ids):
            return
        if len(sensors) != len(ids) or len(metrics) != len(ids):
            raise ValueError("SeriesKeys.add needs one sensor and one metric per series id")
        if self._n and (self.positions(ids) >= 0).any():
            self.remove(ids)
        codes = np.fromiter(map(self._code, metrics), np.int32, count=len(ids))
        order = np.argsort(ids, kind="stable")
        ids, codes = ids[order].astype(np.int32), codes[order]
        new_sensors = [sensors[i] for i in order.tolist()]
        n, m = self._n, len(ids)
        self._reserve(n + m)
        if n == 0 or ids[0] > self._ids[n - 1]:  # the common case: ids newer than every one held
            self._ids[n:n + m] = ids
            self._metric[n:n + m] = codes
            self._sensor.extend(new_sensors)
        else:
            merged = np.concatenate([self._ids[:n], ids])
            perm = np.argsort(merged, kind="stable")
            self._ids[:n + m] = merged[perm]
            self._metric[:n + m] = np.concatenate([self._metric[:n], codes])[perm]
            both = self._sensor + new_sensors
            self._sensor = [both[i] for i in perm.tolist()]
        self._n = n + m

    def remove(self, series_ids: Sequence[int] | np.ndarray) -> None:
        """Forget these ids (those not held are ignored)."""
        pos = self.positions(np.asarray(series_ids, np.int64).reshape(-1))
        pos = np.unique(pos[pos >= 0])
        if not len(pos):
            return
        n = self._n
        keep = np.ones(n, bool)
        keep[pos] = False
        m = int(keep.sum())
        self._ids[:m] = self._ids[:n][keep]
        self._metric[:m] = self._metric[:n][keep]
        self._sensor = [s for s, k in zip(self._sensor, keep.tolist()) if k]
        self._n = m

    def positions(self, series_ids: np.ndarray) -> np.ndarray:
        """Index of each id in the table (-1 where it is not held)."""
        ids = np.asarray(series_ids, np.int64)
        n = self._n
        if n == 0:
            return np.full(ids.shape, -1, np.int64)
        held = self._ids[:n]
        pos = np.searchsorted(held, ids)
        at = np.minimum(pos, n - 1)
        return np.where((pos < n) & (held[at] == ids), at, -1)

    def key_of(self, series_id: int) -> tuple[str, str] | None:
        """(sensor id, metric) of a series id; None if it is not held."""
        k = self._position(series_id)
        if k < 0:
            return None
        return self._sensor[k], self._metric_names[int(self._metric[k])]

    def sensors_of(self, series_ids: np.ndarray) -> list[str | None]:
        """The sensor id string held for each series id (None where the id is not held)."""
        sensor = self._sensor
        return [sensor[k] if k >= 0 else None for k in self.positions(series_ids).tolist()]

    def _position(self, series_id: int) -> int:
        n = self._n
        if n == 0 or not -2**31 <= series_id < 2**31:
            return -1
        k = int(np.searchsorted(self._ids[:n], series_id))
        return k if k < n and int(self._ids[k]) == series_id else -1

    def _code(self, metric: str) -> int:
        code = self._metric_code.get(metric)
        if code is None:
            # interned: each registry row brings its own copy of a name thousands of series share
            metric = sys.intern(metric)
            code = self._metric_code[metric] = len(self._metric_names)
            self._metric_names.append(metric)
        return code

    def _reserve(self, size: int) -> None:
        if size > len(self._ids):
            cap = grown(size, len(self._ids))
            for name in ("_ids", "_metric"):
                old = getattr(self, name)
                new = np.zeros(cap, old.dtype)
                new[:self._n] = old[:self._n]
                setattr(self, name, new)
