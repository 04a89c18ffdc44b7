"""SlotMap: the dense slot of each series this process holds in memory (one map per process).

Why one module of its own: the detectors, the windows and the alert manager all index their
per-series state by the same dense slot, and the alert manager needs to go from a slot to its
series, sensor and metric. One map shared by all of them (owned by the pipeline) means no second
copy that could disagree with it after an eviction.
"""

from __future__ import annotations

from collections.abc import Sequence
from sys import intern

import numpy as np

from urbanpulse.capacity import grown


class SlotMap:
    """Dense slots for the series this process currently holds in memory."""

    def __init__(self) -> None:
        self.slot_of = np.full(1024, -1, np.int32)  # indexed by series id
        self.series_of = np.full(1024, -1, np.int32)  # indexed by slot
        self.sensor: list[str] = []
        self.metric: list[str] = []
        self._free: list[int] = []
        self._next = 0

    def __len__(self) -> int:
        return self._next - len(self._free)

    @property
    def capacity(self) -> int:
        return len(self.series_of)

    def lookup(self, series_ids: np.ndarray) -> np.ndarray:
        """Slot per reading (-1 where the series has none yet)."""
        self._fit_series(int(series_ids.max()) if len(series_ids) else 0)
        return self.slot_of[series_ids]

    def series(self, slots: np.ndarray) -> np.ndarray:
        """Series id per slot (-1 where the slot holds none, also beyond the capacity)."""
        slots = np.asarray(slots, np.int64)
        inside = (slots >= 0) & (slots < len(self.series_of))
        return np.where(inside, self.series_of[np.where(inside, slots, 0)], -1).astype(np.int32)

    def sensor_metric(self, slot: int) -> tuple[str, str]:
        """(sensor_id, metric) of a slot ("" for a slot that holds no series)."""
        if 0 <= slot < self._next and self.series_of[slot] >= 0:
            return self.sensor[slot], self.metric[slot]
        return "", ""

    def allocate(self, series_ids: np.ndarray, sensors: list[str], metrics: list[str]) -> np.ndarray:
        """New slots for these (distinct, unknown) series."""
        out = np.empty(len(series_ids), np.int32)
        for k, (sid, sensor, metric) in enumerate(zip(series_ids.tolist(), sensors, metrics)):
            metric = intern(metric)  # one string per metric name, not one decoded per series' reading
            if self._free:
                slot = self._free.pop()
                self.sensor[slot], self.metric[slot] = sensor, metric
            else:
                slot = self._next
                self._next += 1
                self.sensor.append(sensor)
                self.metric.append(metric)
            out[k] = slot
        self._set(out, np.asarray(series_ids, np.int32))
        return out

    def put(self, slots: Sequence[int] | np.ndarray, series_ids: Sequence[int] | np.ndarray,
            sensors: Sequence[str], metrics: Sequence[str]) -> None:
        """Place these series at the given slots (a caller that picks slots itself: tests, tools)."""
        slots = np.asarray(slots, np.int64)
        if not len(slots):
            return
        top = int(slots.max()) + 1
        if top > self._next:
            self.sensor.extend([""] * (top - self._next))
            self.metric.extend([""] * (top - self._next))
            self._free.extend(range(self._next, top))
            self._next = top
        taken = set(slots.tolist())
        self._free = [s for s in self._free if s not in taken]
        self.release(slots[self.series(slots) >= 0], reuse=False)
        for s, sensor, metric in zip(slots.tolist(), sensors, metrics):
            self.sensor[s], self.metric[s] = sensor, intern(metric)
        self._set(slots.astype(np.int32), np.asarray(series_ids, np.int32))

    def release(self, slots: np.ndarray, reuse: bool = True) -> None:
        """Forget these slots' series (evicted as idle)."""
        slots = np.asarray(slots, np.int64)
        slots = slots[(slots >= 0) & (slots < len(self.series_of))]
        if not len(slots):
            return
        sids = self.series_of[slots]
        sids = sids[sids >= 0]
        # only where the series still points at this slot (it may have moved since)
        back = self.slot_of[sids]
        self.slot_of[sids[np.isin(back, slots)]] = -1
        self.series_of[slots] = -1
        if reuse:
            self._free.extend(int(s) for s in slots)

    def _set(self, slots: np.ndarray, series_ids: np.ndarray) -> None:
        if self._next > len(self.series_of):
            bigger = np.full(grown(self._next, len(self.series_of)), -1, np.int32)
            bigger[:len(self.series_of)] = self.series_of
            self.series_of = bigger
        if len(series_ids):
            self._fit_series(int(series_ids.max()))
        old = self.slot_of[series_ids]  # a series moved to another slot leaves its old one
        moved = (old >= 0) & (old != slots)
        self.series_of[old[moved]] = -1
        self.series_of[slots] = series_ids
        self.slot_of[series_ids] = slots

    def _fit_series(self, top: int) -> None:
        if top >= len(self.slot_of):
            bigger = np.full(grown(top + 1, len(self.slot_of)), -1, np.int32)
            bigger[:len(self.slot_of)] = self.slot_of
            self.slot_of = bigger
