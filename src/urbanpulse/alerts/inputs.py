"""What the alert manager consumes per batch, as columns (numpy arrays).

Only *decisions* reach the alert manager (most readings are normal and never leave the
detectors), so these are small. Closed windows and silences are duck-typed: the dataclasses of
``windows/`` (``ClosedWindows``) and ``detect/`` (``Silences``) fit as they are; the ones here
serve tests and callers that build the columns themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class ClosedWindowsLike(Protocol):
    slot: np.ndarray      # int32
    start_us: np.ndarray  # int64, window start (event time)
    end_us: np.ndarray    # int64, exclusive end


class SilencesLike(Protocol):
    slot: np.ndarray        # int32
    last_ts_us: np.ndarray  # int64, the series' last reading before the gap
    gap_us: np.ndarray      # int64, how long it has been silent
    score: np.ndarray       # float64 in [0, 1]


@dataclass(slots=True)
class ClosedWindowsRef:
    """Closed tumbling windows: only (slot, start, end) matter for auto-resolve."""

    slot: np.ndarray
    start_us: np.ndarray
    end_us: np.ndarray
    count: np.ndarray | None = None  # windows with count 0 (if given) are ignored

    @classmethod
    def of(cls, slot: Sequence[int], start_us: Sequence[int], end_us: Sequence[int]) -> ClosedWindowsRef:
        return cls(np.asarray(slot, np.int32), np.asarray(start_us, np.int64), np.asarray(end_us, np.int64))


@dataclass(slots=True)
class SilencesRef:
    """Series that have been silent too long (the silence detector's anomalous signal). ``group``
    (optional, per row): the source the series comes from, so a whole source going quiet becomes
    one incident (``alerts.silence_group_min``)."""

    slot: np.ndarray
    last_ts_us: np.ndarray
    gap_us: np.ndarray
    score: np.ndarray
    group: Sequence[str] | None = None

    @classmethod
    def of(cls, slot: Sequence[int], last_ts_us: Sequence[int], gap_us: Sequence[int],
           score: Sequence[float], group: Sequence[str] | None = None) -> SilencesRef:
        return cls(np.asarray(slot, np.int32), np.asarray(last_ts_us, np.int64),
                   np.asarray(gap_us, np.int64), np.asarray(score, np.float64), group)


@dataclass(slots=True)
class Detections:
    """Anomalous decisions: one row per (reading, detector) whose decision was true.

    ``detector`` indexes ``names``. ``series_id``, ``sensor_id`` and ``metric`` may be None,
    then they come from the slots registered with ``AlertManager.assign``. ``severity`` (per
    row, None/"" = use the alert config) lets detector settings carry their own severity.
    ``group`` (optional, per row): the source of the series, for grouping silence (see SilencesRef).
    """

    slot: np.ndarray
    ts_us: np.ndarray
    value: np.ndarray
    score: np.ndarray
    detector: np.ndarray
    names: tuple[str, ...]
    series_id: np.ndarray | None = None
    sensor_id: Sequence[str] | None = None
    metric: Sequence[str] | None = None
    severity: Sequence[str | None] | None = None
    group: Sequence[str] | None = None

    def __len__(self) -> int:
        return len(self.ts_us)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0), np.empty(0),
                   np.empty(0, np.int16), ())

    @classmethod
    def build(cls, *, slot: Any, ts_us: Any, value: Any, score: Any, detector: Sequence[str],
              series_id: Any = None, sensor_id: Sequence[str] | None = None, metric: Sequence[str] | None = None,
              severity: Sequence[str | None] | None = None, group: Sequence[str] | None = None) -> Detections:
        """From columns with the detector *name* per row."""
        names = tuple(dict.fromkeys(detector))
        index = {n: i for i, n in enumerate(names)}
        return cls(slot=np.asarray(slot, np.int32), ts_us=np.asarray(ts_us, np.int64),
                   value=np.asarray(value, np.float64), score=np.asarray(score, np.float64),
                   detector=np.fromiter((index[d] for d in detector), np.int16, len(detector)), names=names,
                   series_id=None if series_id is None else np.asarray(series_id, np.int32),
                   sensor_id=sensor_id, metric=metric, severity=severity, group=group)

    @classmethod
    def of(cls, rows: Sequence[dict[str, Any]]) -> Detections:
        """From dicts with slot, series_id, sensor_id, metric, detector (name), ts_us, value, score
        and optionally severity: convenient for tests and small callers."""
        names = tuple(dict.fromkeys(r["detector"] for r in rows))
        index = {n: i for i, n in enumerate(names)}
        return cls(
            slot=np.array([r.get("slot", 0) for r in rows], np.int32),
            ts_us=np.array([r["ts_us"] for r in rows], np.int64),
            value=np.array([r.get("value", 0.0) for r in rows], np.float64),
            score=np.array([r.get("score", 1.0) for r in rows], np.float64),
            detector=np.array([index[r["detector"]] for r in rows], np.int16),
            names=names,
            series_id=np.array([r["series_id"] for r in rows], np.int32) if all("series_id" in r for r in rows)
            else None,
            sensor_id=[r["sensor_id"] for r in rows] if all("sensor_id" in r for r in rows) else None,
            metric=[r["metric"] for r in rows] if all("metric" in r for r in rows) else None,
            severity=[r.get("severity") for r in rows],
            group=[r.get("group") or "" for r in rows] if any(r.get("group") for r in rows) else None)

    @classmethod
    def from_scores(cls, scores: Any, severities: dict[str, str] | None = None,
                    skip: Sequence[str] = ("silence",)) -> Detections:
        """The decisions of a ``detect.Scores`` (slot, ts_us, value, score [n, d], decision [n, d],
        names). Series ids, sensors and metrics then come from ``AlertManager.assign``.
        ``severities`` maps detector name -> severity from the detector settings. Detectors in
        ``skip`` are dropped (silence alerts come from ``check_silence``, not from scores)."""
        decision = np.asarray(scores.decision, bool).copy()
        names = tuple(scores.names)
        for i, n in enumerate(names):
            if n in skip:
                decision[:, i] = False
        rows, cols = np.nonzero(decision)
        sev = None
        if severities:
            per_det = [severities.get(n) for n in names]
            sev = [per_det[c] for c in cols.tolist()]
        return cls(slot=np.asarray(scores.slot)[rows].astype(np.int32, copy=False),
                   ts_us=np.asarray(scores.ts_us)[rows].astype(np.int64, copy=False),
                   value=np.asarray(scores.value)[rows].astype(np.float64, copy=False),
                   score=np.asarray(scores.score)[rows, cols].astype(np.float64, copy=False),
                   detector=cols.astype(np.int16), names=names, severity=sev)
