"""Maintenance windows: planned periods in which a sensor's detections raise no alert.

Windows come from the config file (``alerts.maintenance``) and from the ``maintenance_windows``
table (``POST /maintenance``). They match sensors by fnmatch pattern and readings by *event*
time, so a replayed backlog recorded during maintenance stays muted too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import numpy as np

from urbanpulse.alerts.model import dt_to_us, iso
from urbanpulse.alerts.settings import MaintenanceWindowSettings


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """One window; ``id`` is None for windows from the config file."""

    id: int | None
    sensor: str
    starts_us: int
    ends_us: int
    reason: str = ""

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "sensor": self.sensor, "starts_at": iso(self.starts_us), "ends_at": iso(self.ends_us),
                "reason": self.reason, "source": "config" if self.id is None else "api"}

    @classmethod
    def from_settings(cls, s: MaintenanceWindowSettings) -> MaintenanceWindow:
        return cls(None, s.sensor, dt_to_us(s.starts_at) or 0, dt_to_us(s.ends_at) or 0, s.reason)

    @classmethod
    def from_row(cls, row: Any) -> MaintenanceWindow:
        return cls(row["id"], row["sensor"], dt_to_us(row["starts_at"]) or 0, dt_to_us(row["ends_at"]) or 0,
                   row["reason"])


class MaintenanceCalendar:
    """Answers "is this (sensor, event time) muted?" for whole columns at once.

    Pattern matching is cached per sensor id, so a batch costs one dict lookup per distinct
    sensor plus a vectorised range check per window that matches it.
    """

    def __init__(self, windows: Iterable[MaintenanceWindow] = ()) -> None:
        self.windows: tuple[MaintenanceWindow, ...] = ()
        self._matches: dict[str, tuple[int, ...]] = {}
        self.replace(windows)

    def replace(self, windows: Iterable[MaintenanceWindow]) -> None:
        self.windows = tuple(windows)
        self._matches = {}

    def _windows_for(self, sensor: str) -> tuple[int, ...]:
        hit = self._matches.get(sensor)
        if hit is None:
            hit = tuple(i for i, w in enumerate(self.windows) if fnmatchcase(sensor, w.sensor))
            if len(self._matches) > 100_000:
                self._matches.clear()
            self._matches[sensor] = hit
        return hit

    def muted(self, sensors: Sequence[str], ts_us: np.ndarray) -> np.ndarray:
        """Bool mask: row i is inside a window matching sensors[i]."""
        out = np.zeros(len(ts_us), bool)
        if not self.windows or not len(ts_us):
            return out
        by_sensor: dict[str, list[int]] = {}
        for i, s in enumerate(sensors):
            by_sensor.setdefault(s, []).append(i)
        for sensor, rows in by_sensor.items():
            wins = self._windows_for(sensor)
            if not wins:
                continue
            idx = np.asarray(rows)
            t = ts_us[idx]
            hit = np.zeros(len(idx), bool)
            for w in wins:
                win = self.windows[w]
                hit |= (t >= win.starts_us) & (t < win.ends_us)
            out[idx] = hit
        return out
