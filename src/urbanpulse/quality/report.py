"""Data quality over a period, per series, per sensor and per area: missing data made visible.

Definitions (docs/api.md "Checking data quality" repeats them for users); the period is
``[start, end)`` and ``end`` is capped at now (nothing is expected from the future):

- ``received``: stored readings with an event time in the period; ``last_seen``: the newest of them.
- ``expected``: the *active time* in the period ÷ the registry's ``interval_s``, summed over the
  registry versions valid then (None when the registry gives the series no interval). Active
  time is when the version says ``status: active`` and lists the metric: maintenance, retirement
  and time before registration expect nothing. ``completeness``: ``min(1, received / expected)``
  (None when nothing was expected).
- ``gaps``: stretches of active time longer than ``gap_factor × interval_s`` (default 1.5: one
  missing reading, with room for jitter) with no reading, between consecutive readings or
  between a boundary (of the period or of active time) and the nearest reading; each with
  ``start``, ``end`` and ``seconds``. A move (a new version, still active) is not a boundary.
- ``late``: readings flagged late (``readings.flags & 1``).
- ``quarantined``: quarantine rows received in the period whose payload names the series
  (``sensor_id`` and ``metric`` of a JSON object), by reason. A message that is not JSON names no
  series and is not counted here (``SELECT reason, count(*) FROM quarantine`` shows everything).

Roll-ups (per sensor, per area of the sensor's current registration) add the series up; their
``completeness`` is ``Σ min(received, expected) / Σ expected`` over the series that have an interval,
so an over-reporting series cannot hide a silent one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from urbanpulse.query.errors import QueryTimeout
from urbanpulse.registry.model import DataClass
from urbanpulse.registry.select import SeriesInfo, select_series
from urbanpulse.registry.store import Executor

GAP_FACTOR = 1.5
#: gaps listed per series (the count and total length always cover all of them)
MAX_GAPS_LISTED = 1000


@dataclass(frozen=True)
class Gap:
    """A stretch of the period with no reading, longer than the gap threshold."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass
class SeriesQuality:
    """The quality figures of one series over the period."""

    series: SeriesInfo
    received: int = 0
    last_seen: datetime | None = None
    expected: float | None = None
    late: int = 0
    gaps: list[Gap] = field(default_factory=list)
    gap_count: int = 0
    gap_seconds: float = 0.0
    quarantined: dict[str, int] = field(default_factory=dict)
    #: why gaps and completeness cannot be reported (no interval is expected of the series), and how to
    #: give one; None when the registry gives an interval. Its gap figures are then unknown, not 0.
    interval_unknown: str | None = None

    @property
    def completeness(self) -> float | None:
        if not self.expected:
            return None
        return min(1.0, self.received / self.expected)


@dataclass
class RollUp:
    """The same figures added up over the series of a sensor or an area."""

    key: str | None
    series: int = 0
    received: int = 0
    expected: float = 0.0
    received_of_expected: float = 0.0  # Σ min(received, expected) over series with an interval
    last_seen: datetime | None = None
    late: int = 0
    gap_count: int = 0
    gap_seconds: float = 0.0
    quarantined: Counter[str] = field(default_factory=Counter)
    #: series whose interval is unknown: their gaps are not in gap_count (all of them: gap_count None)
    without_interval: int = 0

    @property
    def completeness(self) -> float | None:
        return min(1.0, self.received_of_expected / self.expected) if self.expected else None

    def add(self, q: SeriesQuality) -> None:
        self.series += 1
        self.received += q.received
        if q.expected:
            self.expected += q.expected
            self.received_of_expected += min(float(q.received), q.expected)
        if q.last_seen is not None and (self.last_seen is None or q.last_seen > self.last_seen):
            self.last_seen = q.last_seen
        self.late += q.late
        if q.interval_unknown is None:
            self.gap_count += q.gap_count
            self.gap_seconds += q.gap_seconds
        else:
            self.without_interval += 1
        self.quarantined.update(q.quarantined)


@dataclass
class QualityReport:
    """Quality of the selected series over ``[start, end)``, with per-sensor and per-area roll-ups."""

    start: datetime
    end: datetime
    series: list[SeriesQuality]
    sensors: list[RollUp]
    areas: list[RollUp]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the ``GET /quality`` answer and the ``quality`` section of an export."""
        return {
            "start": _iso(self.start), "end": _iso(self.end), "gap_factor": GAP_FACTOR,
            "series": [_series_dict(q) for q in self.series],
            "sensors": [_rollup_dict(r, "sensor_id") for r in self.sensors],
            "areas": [_rollup_dict(r, "area") for r in self.areas],
        }


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _series_dict(q: SeriesQuality) -> dict[str, Any]:
    s = q.series
    known = q.interval_unknown is None  # else no gap can be told from a usual pause: null, not 0
    return {"series_id": s.series_id, "sensor_id": s.sensor_id, "metric": s.metric, "area": s.area,
            "interval_s": s.interval_s, "last_seen": _iso(q.last_seen), "received": q.received,
            "expected": q.expected, "completeness": q.completeness, "late": q.late,
            "gap_count": q.gap_count if known else None, "gap_seconds": q.gap_seconds if known else None,
            "gaps": [{"start": _iso(g.start), "end": _iso(g.end), "seconds": g.seconds} for g in q.gaps]
            if known else None,
            "interval_unknown": q.interval_unknown, "quarantined": dict(sorted(q.quarantined.items()))}


def _rollup_dict(r: RollUp, key: str) -> dict[str, Any]:
    counted = r.without_interval < r.series  # some series' gaps are known
    return {key: r.key, "series": r.series, "last_seen": _iso(r.last_seen), "received": r.received,
            "expected": r.expected or None, "completeness": r.completeness, "late": r.late,
            "gap_count": r.gap_count if counted else None, "gap_seconds": r.gap_seconds if counted else None,
            "series_without_interval": r.without_interval, "quarantined": dict(sorted(r.quarantined.items()))}


def interval_unknown(series: SeriesInfo) -> str:
    """Why a series' gaps and completeness are unknown (no interval is expected of it), and how to give one."""
    sensor, metric = series.sensor_id, series.metric
    entry = f'{{"metrics": {{"{metric}": {{"unit": "<unit>", "interval_s": <seconds>}}}}}}'
    if not series.registered:
        return (f"sensor {sensor!r} is not in the sensor registry, so no reporting interval is expected of it: its "
                f"gaps and completeness are unknown (not 0). Register it with {entry} (PUT /sensors/{sensor}, or "
                f"`urbanpulse registry import`)")
    return (f"the sensor registry does not list {metric!r} for sensor {sensor!r}, so no reporting interval is "
            f"expected of it: its gaps and completeness are unknown (not 0). Add it: PATCH /sensors/{sensor} with "
            f"{entry}")


# Two statements, each walking every selected series' readings once through the (series_id, ts)
# primary key in order, one series at a time (LATERAL): no sort, whatever the planner guesses
# about the id array. Measured on 1,000 series x 1 day at 1/min (1.41 M readings, 2 shared
# cores): 0.65 s for the counts, 2.0 s for the gaps; one query with a window over the whole
# selection took 3.4 s (a 36 MB on-disk sort). See docs/api.md for what a request may cover.
_STATS_SQL = """
SELECT s.id AS series_id, r.n, r.first, r.last, r.late
  FROM unnest($1::int4[]) AS s(id)
 CROSS JOIN LATERAL (
       SELECT count(*) AS n, min(ts) AS first, max(ts) AS last, count(*) FILTER (WHERE flags & 1 = 1) AS late
         FROM readings WHERE series_id = s.id AND ts >= $2 AND ts < $3) r
 WHERE r.n > 0
"""

_GAPS_SQL = """
SELECT s.id AS series_id, r.prev, r.ts
  FROM unnest($1::int4[], $2::float8[]) AS s(id, threshold_s)
 CROSS JOIN LATERAL (
       SELECT ts, lag(ts) OVER (ORDER BY ts) AS prev
         FROM readings WHERE series_id = s.id AND ts >= $3 AND ts < $4) r
 WHERE r.prev IS NOT NULL AND extract(epoch FROM r.ts - r.prev) > s.threshold_s
"""

_QUARANTINE_SQL = """
SELECT k.sensor_id, k.metric, q.reason, count(*) AS n
  FROM quarantine q, quarantine_series(q.payload) k
 WHERE q.received_at >= $1 AND q.received_at < $2
   AND k.sensor_id = ANY($3::text[])
 GROUP BY 1, 2, 3
"""


async def quality_report(db: Executor, start: datetime, end: datetime, *,
                         series: Sequence[SeriesInfo] | None = None, sensor_ids: Sequence[str] | None = None,
                         metric: str | Sequence[str] | None = None, area: str | Sequence[str] | None = None,
                         data_classes: Sequence[DataClass | str] | None = None,
                         gap_factor: float = GAP_FACTOR, now: datetime | None = None,
                         timeout_s: float | None = None) -> QualityReport:
    """Quality of the given series (or those selected by ids / metric / area / data class) over
    ``[start, end)``; see the module doc for every definition. A statement running longer than
    ``timeout_s`` raises :class:`QueryTimeout` (HTTP 503) saying what to narrow."""
    try:
        return await _quality_report(db, start, end, series=series, sensor_ids=sensor_ids, metric=metric, area=area,
                                     data_classes=data_classes, gap_factor=gap_factor, now=now, timeout_s=timeout_s)
    except TimeoutError as exc:
        raise QueryTimeout(f"the quality report took longer than {timeout_s:g} s; ask for a shorter period or fewer "
                           f"series (sensor=, area=, metric=)") from exc


async def _quality_report(db: Executor, start: datetime, end: datetime, *, series: Sequence[SeriesInfo] | None,
                          sensor_ids: Sequence[str] | None, metric: str | Sequence[str] | None,
                          area: str | Sequence[str] | None, data_classes: Sequence[DataClass | str] | None,
                          gap_factor: float, now: datetime | None, timeout_s: float | None) -> QualityReport:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end need a UTC offset")
    end = min(end, now or datetime.now(timezone.utc))
    if series is None:
        series = await select_series(db, sensor_ids=sensor_ids, metric=metric, area=area, data_classes=data_classes,
                                     include_silent=True)
    series = list(series)
    out = {(s.sensor_id, s.metric): SeriesQuality(s) for s in series}
    by_id = {s.series_id: out[(s.sensor_id, s.metric)] for s in series if s.series_id is not None}
    duration = max(0.0, (end - start).total_seconds())
    active = await _active_pieces(db, series, start, end, timeout_s) if series and duration > 0 else {}
    for key, pieces in active.items():
        out[key].expected = sum((p.end - p.start).total_seconds() / p.interval_s for p in pieces)
    for key, q in out.items():  # no interval in the period nor now (one registered later expects nothing yet)
        if key not in active and q.series.interval_s is None:
            q.interval_unknown = interval_unknown(q.series)
    if series and duration > 0:
        stored = [s for s in series if s.series_id is not None]
        first: dict[int | None, datetime] = {}
        if stored:
            for r in await db.fetch(_STATS_SQL, [s.series_id for s in stored], start, end, timeout=timeout_s):
                q = by_id[r["series_id"]]
                q.received, q.late, q.last_seen = r["n"], r["late"], r["last"]
                first[q.series.series_id] = r["first"]
        candidates: dict[tuple[str, str], list[Gap]] = {key: [] for key, pieces in active.items() if pieces}
        timed = [s for s in stored if (s.sensor_id, s.metric) in candidates and by_id[s.series_id].received > 1]
        if timed:
            thresholds = [gap_factor * min(p.interval_s for p in active[(s.sensor_id, s.metric)]) for s in timed]
            for r in await db.fetch(_GAPS_SQL, [s.series_id for s in timed], thresholds, start, end,
                                    timeout=timeout_s):
                q = by_id[r["series_id"]]
                candidates[(q.series.sensor_id, q.series.metric)].append(Gap(r["prev"], r["ts"]))
        for key, found in candidates.items():
            q = out[key]
            if q.received == 0:
                found.append(Gap(start, end))
            else:
                found += [Gap(start, first[q.series.series_id]), Gap(q.last_seen, end)]  # type: ignore[arg-type]
            for gap in sorted(_clip(found, active[key], gap_factor), key=lambda g: g.start):
                _add_gap(q, gap)
        for r in await db.fetch(_QUARANTINE_SQL, start, end, sorted({s.sensor_id for s in series}),
                                timeout=timeout_s):
            q = out.get((r["sensor_id"], r["metric"]))
            if q is not None:
                q.quarantined[r["reason"]] = r["n"]
    sensors: dict[str, RollUp] = {}
    areas: dict[str | None, RollUp] = {}
    for q in out.values():
        sensors.setdefault(q.series.sensor_id, RollUp(q.series.sensor_id)).add(q)
        areas.setdefault(q.series.area, RollUp(q.series.area)).add(q)
    return QualityReport(start, end, [out[(s.sensor_id, s.metric)] for s in series],
                         [sensors[k] for k in sorted(sensors)],
                         [areas[k] for k in sorted(areas, key=lambda a: (a is None, a or ""))])


_VERSIONS_SQL = """
SELECT sensor_id, valid_from, valid_to, status, metrics::text AS metrics
  FROM sensors_history
 WHERE sensor_id = ANY($1::text[]) AND valid_from < $3 AND (valid_to IS NULL OR valid_to > $2)
 ORDER BY sensor_id, valid_from
"""


@dataclass(frozen=True)
class _Piece:
    """A stretch of the period in which a series is expected to report every ``interval_s``."""

    start: datetime
    end: datetime
    interval_s: float


async def _active_pieces(db: Executor, series: Sequence[SeriesInfo], start: datetime, end: datetime,
                         timeout_s: float | None) -> dict[tuple[str, str], list[_Piece]]:
    """Per (sensor, metric): the parts of ``[start, end)`` in which the registry versions valid
    then say the sensor was ``active`` and listed the metric with an interval. Time in
    maintenance, retired or before registration expects nothing: a series whose versions in the
    period list it with an interval but none is active gets no parts (it expects 0 readings, which
    is known, unlike a series the registry gives no interval for, which is absent)."""
    wanted = {(s.sensor_id, s.metric) for s in series}
    sensors = sorted({s.sensor_id for s in series if s.registered})
    out: dict[tuple[str, str], list[_Piece]] = {}
    if not sensors:
        return out
    for r in await db.fetch(_VERSIONS_SQL, sensors, start, end, timeout=timeout_s):
        a, b = max(r["valid_from"], start), min(r["valid_to"] or end, end)
        for metric, info in orjson.loads(r["metrics"]).items():
            key = (r["sensor_id"], metric)
            interval = (info or {}).get("interval_s")
            if key in wanted and interval:
                pieces = out.setdefault(key, [])
                if r["status"] == "active":
                    pieces.append(_Piece(a, b, float(interval)))
    return out


def _clip(candidates: list[Gap], pieces: list[_Piece], gap_factor: float) -> list[Gap]:
    """The parts of candidate gaps (stretches between consecutive readings or a period boundary)
    that fall in active time, merged across adjacent versions (a move is not a boundary), kept
    when longer than ``gap_factor`` times the interval expected there."""
    merged: list[_Piece] = []
    for p in sorted(pieces, key=lambda p: p.start):
        if merged and p.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = _Piece(last.start, max(last.end, p.end), min(last.interval_s, p.interval_s))
        else:
            merged.append(p)
    out = []
    for g in candidates:
        for p in merged:
            a, b = max(g.start, p.start), min(g.end, p.end)
            if (b - a).total_seconds() > gap_factor * p.interval_s:
                out.append(Gap(a, b))
    return out


def _add_gap(q: SeriesQuality, gap: Gap) -> None:
    q.gap_count += 1
    q.gap_seconds += gap.seconds
    if len(q.gaps) < MAX_GAPS_LISTED:
        q.gaps.append(gap)


async def quality_section(db: Executor, series: Sequence[SeriesInfo], start: datetime, end: datetime) -> dict[str, Any]:
    """The ``quality`` section an export writes next to its rows: the report of exactly the
    exported series over the exported range, as JSON-ready data."""
    return (await quality_report(db, start, end, series=series)).as_dict()
