"""Objective rules that find natural faults in real series, and NAB-like file segments.

A "fault" here is something a data engineer would call a sensor or data problem without
looking at the detector: the rules are fixed thresholds on the data itself, the same for every
dataset.
- outage: `OUTAGE_MIN_ROWS` or more consecutive missing readings (NaN / -200). The readings are
  dropped from the file, so the outage is a gap in timestamps; the anomaly is the first reading
  after the gap (the first moment a streaming detector can see it in a `timestamp,value` file).
- flatline: `FLATLINE_MIN_ROWS` or more identical consecutive readings, only for metrics whose
  values are continuous (quantised or zero-inflated metrics like rain, SO2 or wind speed repeat
  legitimately); the anomaly is the first reading of the run.
- ceiling: a reading at or above the instrument's documented maximum (dataset READMEs); the
  anomaly is the first reading of each run.
Events closer than `MERGE_ROWS` are one anomaly (NAB's labeler buckets nearby labels too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OUTAGE_MIN_ROWS = 6  # readings (6 h at hourly data), as in the injected 6-hour gap
FLATLINE_MIN_ROWS = 12  # readings (12 h at hourly data)
MERGE_ROWS = 24


@dataclass(frozen=True)
class Event:
    row: int  # index of the anomaly's first observable reading in the emitted file
    kind: str  # outage | flatline | ceiling | spike | level_shift | drift | gap
    length: int  # rows (or missing readings for outages/gaps) the fault lasts


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the True runs of a boolean array."""
    m = np.r_[False, np.asarray(mask, dtype=bool), False].astype(np.int8)
    d = np.diff(m)
    return np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]


def natural_events(values: np.ndarray, *, flatline: bool, ceiling: float | None) -> tuple[np.ndarray, list[Event]]:
    """Find the natural faults of one grid series (NaN = missing).

    Returns the kept-row mask (non-missing readings, which are what the file holds) and the
    events in row space of the emitted file, merged and sorted."""
    keep = ~np.isnan(values)
    row_of = np.cumsum(keep) - 1  # grid index -> emitted row (valid where keep)
    events: list[Event] = []
    s, e = runs(~keep)
    for a, b in zip(s, e):
        if b - a >= OUTAGE_MIN_ROWS and b < len(values) and a > 0:
            events.append(Event(int(row_of[b]), "outage", int(b - a)))
    v = values[keep]
    if flatline and len(v) > 1:
        same = np.r_[False, v[1:] == v[:-1]]
        s, e = runs(same)
        for a, b in zip(s, e):
            if b - a + 1 >= FLATLINE_MIN_ROWS:
                events.append(Event(int(a - 1), "flatline", int(b - a + 1)))
    if ceiling is not None:
        s, e = runs(v >= ceiling)
        events.extend(Event(int(a), "ceiling", int(b - a)) for a, b in zip(s, e))
    return keep, merge_events(events)


def merge_events(events: list[Event], min_sep: int = MERGE_ROWS) -> list[Event]:
    out: list[Event] = []
    for ev in sorted(events, key=lambda x: x.row):
        if out and ev.row - out[-1].row < min_sep:
            continue
        out.append(ev)
    return out


def window_half(n_rows: int, n_anomalies: int) -> int:
    """Half of NAB's window length for a file (10 % of the rows shared among its anomalies)."""
    return int(0.10 * n_rows / max(n_anomalies, 1)) // 2


def probation_rows(n_rows: int) -> int:
    return int(min(np.floor(0.15 * n_rows), 750))


def events_fit(n_rows: int, events: list[Event]) -> bool:
    """True when every anomaly's NAB window lies after the probationary period and inside the
    file, and no two windows overlap (so each anomaly stays one window)."""
    if not events:
        return False
    half = window_half(n_rows, len(events))
    rows = [ev.row for ev in events]
    if rows[0] - half < probation_rows(n_rows) or rows[-1] + half > n_rows - 1:
        return False
    return all(b - a > 2 * half for a, b in zip(rows, rows[1:]))
