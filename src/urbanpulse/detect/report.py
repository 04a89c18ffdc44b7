"""The alert budget of a backtest: alerts per series per day by detector, and on labelled history
each detector's precision and recall (`urbanpulse detect --report`).

Why: an operator who gets ten alerts per series per year from every sensor stops reading them, so
before enabling alerts one must see how many each detector would raise on this history, and where
the history is labelled, how many of them were right. An *alert* here is an onset: a reading where
a detector's decision turns on (a run of consecutive decisions is one alert, as the alert
lifecycle would open one). On labelled input (a `label` column, 1 inside an anomaly, 0 outside; or
`anomaly` / `is_anomaly`), a labelled *event* is a run of label-1 rows:
- precision of a detector = its alert onsets inside an event (or within `LABEL_SLACK_ROWS` rows
  after one: the first reading after a gap belongs to the gap) / all its alert onsets;
- recall = events in which it raised at least one onset / all events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LABEL_COLUMNS = ("label", "anomaly", "is_anomaly")
LABEL_SLACK_ROWS = 1
_DAY_US = 86_400_000_000


@dataclass
class SeriesReport:
    """Counts of one backtested series (accumulated chunk by chunk)."""

    name: str
    names: tuple[str, ...]
    first_ts: int | None = None
    last_ts: int | None = None
    scored: int = 0
    onsets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per detector
    hits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # onsets inside an event
    events: int = 0
    found: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # events with an onset
    labelled: bool = False
    _prev: np.ndarray | None = None  # last decision row (onsets across chunks)
    _in_event: bool = False
    _event_hit: np.ndarray | None = None
    _since_event: int = 1 << 30

    def __post_init__(self) -> None:
        k = len(self.names)
        self.onsets, self.hits, self.found = np.zeros(k, np.int64), np.zeros(k, np.int64), np.zeros(k, np.int64)
        self._event_hit = np.zeros(k, bool)

    @property
    def days(self) -> float:
        if self.first_ts is None or self.last_ts is None:
            return 0.0
        return max(self.last_ts - self.first_ts, 1) / _DAY_US

    def add(self, ts_us: np.ndarray, decision: np.ndarray, label: np.ndarray | None) -> None:
        """One chunk of scored rows in time order: times, decisions [n, k], labels (or None)."""
        n = len(ts_us)
        if n == 0:
            return
        self.first_ts = int(ts_us[0]) if self.first_ts is None else self.first_ts
        self.last_ts = int(ts_us[-1])
        self.scored += n
        prev = np.vstack([self._prev if self._prev is not None else np.zeros((1, len(self.names)), bool),
                          decision[:-1]])
        onset = decision & ~prev
        self._prev = decision[-1:].copy()
        self.onsets += onset.sum(axis=0)
        if label is None:
            return
        self.labelled = True
        for i in range(n):  # events are few and rows are already in memory: a plain loop is clear
            lab = bool(label[i] > 0.5)
            if lab and not self._in_event:
                self.events += 1
                self._event_hit[:] = False
            if not lab and self._in_event:
                self.found += self._event_hit
                self._since_event = 0
            self._in_event = lab
            inside = lab or self._since_event < LABEL_SLACK_ROWS
            if inside:
                self.hits += onset[i]
            if lab or self._since_event < LABEL_SLACK_ROWS:
                self._event_hit |= onset[i]
            if not lab:
                self._since_event += 1

    def finish(self) -> None:
        """Close an event still open at the end of the input."""
        if self._in_event:
            self.found += self._event_hit
            self._in_event = False


def format_report(reports: list[SeriesReport]) -> str:
    """Alerts per series per day by detector (each series and all), and precision/recall on labels."""
    if not reports:
        return "no series scored"
    names = reports[0].names
    w = max([len(r.name) for r in reports] + [10])
    lines = ["alerts per series per day (onsets of each detector's decision)",
             f"{'series':{w}s} {'days':>8s} " + " ".join(f"{n:>9s}" for n in names) + f" {'all':>9s}"]
    for r in reports:
        d = max(r.days, 1e-9)
        lines.append(f"{r.name:{w}s} {r.days:8.1f} " + " ".join(f"{c / d:9.3f}" for c in r.onsets)
                     + f" {r.onsets.sum() / d:9.3f}")
    total_days = sum(r.days for r in reports)
    tot = sum((r.onsets for r in reports), np.zeros(len(names), np.int64))
    if len(reports) > 1 and total_days > 0:
        lines.append(f"{'mean':{w}s} {total_days / len(reports):8.1f} "
                     + " ".join(f"{c / total_days:9.3f}" for c in tot) + f" {tot.sum() / total_days:9.3f}")
    lab = [r for r in reports if r.labelled]
    if lab:
        events = sum(r.events for r in lab)
        hits = sum((r.hits for r in lab), np.zeros(len(names), np.int64))
        ons = sum((r.onsets for r in lab), np.zeros(len(names), np.int64))
        found = sum((r.found for r in lab), np.zeros(len(names), np.int64))
        lines += ["", f"labelled: {len(lab)} series, {events} events (runs of label 1)",
                  f"{'detector':10s} {'alerts':>7s} {'precision':>9s} {'recall':>7s}"]
        for j, n in enumerate(names):
            prec = f"{hits[j] / ons[j]:9.2f}" if ons[j] else f"{'-':>9s}"
            rec = f"{found[j] / events:7.2f}" if events else f"{'-':>7s}"
            lines.append(f"{n:10s} {ons[j]:7d} {prec} {rec}")
    return "\n".join(lines)


def label_column(names: list[str]) -> int | None:
    """Index of the label column among lower-cased header names, if there is one."""
    for c in LABEL_COLUMNS:
        if c in names:
            return names.index(c)
    return None


def series_name(path: Path, sensor_id: str | None) -> str:
    return sensor_id or path.stem
