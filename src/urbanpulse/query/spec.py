"""What a history query asks for, parsed and checked once (HTTP, CLI and export share it).

Every parse error is a :class:`QueryError` whose message names the parameter and what to send.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo

from urbanpulse.query.buckets import Bucket, parse_bucket, parse_tz
from urbanpulse.query.errors import QueryError, UnknownSeries

#: aggregates the rollup tables can answer exactly (percentiles need every reading)
ROLLUP_AGGREGATES = ("count", "min", "max", "mean", "sum", "stddev", "first", "last")
NAMED_PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "median": 0.5}
DEFAULT_AGGREGATES = ("count", "mean", "min", "max")
Fill = Literal["null", "previous", "linear"]
Path = Literal["auto", "raw", "rollup"]
_PCT = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")


@dataclass(frozen=True)
class SeriesSelector:
    """Which series: sensor ids and/or metrics, or the registry's area, tags and bounding box."""

    sensors: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    area: str | None = None
    tags: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None  # min_lon, min_lat, max_lon, max_lat

    @property
    def needs_registry(self) -> bool:
        return self.area is not None or bool(self.tags) or self.bbox is not None

    def is_empty(self) -> bool:
        return not (self.sensors or self.metrics or self.needs_registry)


@dataclass(frozen=True)
class HistoryQuery:
    """A parsed history query. ``bucket`` None means the readings themselves."""

    series: SeriesSelector
    start: datetime
    end: datetime
    bucket: Bucket | None = None
    aggregates: tuple[str, ...] = DEFAULT_AGGREGATES
    percentiles: tuple[float, ...] = ()
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    fill: Fill | None = None
    path: Path = "auto"

    @property
    def columns(self) -> tuple[str, ...]:
        """Output value columns in order: aggregates, then one per percentile."""
        return self.aggregates + tuple(percentile_name(q) for q in self.percentiles)

    def fingerprint(self) -> str:
        """Identifies the query (not the page) so a cursor cannot be replayed against another query."""
        key = repr((self.series, self.start, self.end, self.bucket, self.aggregates, self.percentiles,
                    str(self.tz), self.fill))
        return hashlib.blake2s(key.encode(), digest_size=6).hexdigest()


def percentile_name(q: float) -> str:
    """0.5 -> ``p50``, 0.999 -> ``p99.9``."""
    return "p" + f"{q * 100:.6f}".rstrip("0").rstrip(".")


def parse_time(name: str, text: str | None, default: datetime | None = None) -> datetime:
    """ISO 8601 with a zone (``2024-03-31T00:00:00Z``); a date alone is midnight UTC."""
    if text in (None, ""):
        if default is None:
            raise QueryError(f"{name} is required (ISO 8601, e.g. 2024-03-31T00:00:00Z)")
        return default
    try:
        t = datetime.fromisoformat(text.strip().replace(" ", "+") if "T" in text else text.strip())
    except ValueError as exc:
        raise QueryError(f"{name}={text!r} is not an ISO 8601 time; send e.g. 2024-03-31T00:00:00Z") from exc
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _csv(text: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


def parse_aggregates(text: str | None, percentile: str | None, bucketed: bool) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """``agg=count,mean,p95`` and ``percentile=0.37,0.5`` -> (aggregates, percentile fractions)."""
    aggs: list[str] = []
    pcts: list[float] = []
    for a in _csv(text.lower() if text else None) or (DEFAULT_AGGREGATES if bucketed else ()):
        if a in ("avg", "average"):
            a = "mean"
        if a in ("std", "stdev"):
            a = "stddev"
        if a in ROLLUP_AGGREGATES:
            if a not in aggs:
                aggs.append(a)
        elif a in NAMED_PERCENTILES or _PCT.match(a):
            q = NAMED_PERCENTILES.get(a) or float(_PCT.match(a).group(1)) / 100  # type: ignore[union-attr]
            if q not in pcts:
                pcts.append(q)
        else:
            raise QueryError(f"agg {a!r} is not known; use count, min, max, mean, sum, stddev, first, last, "
                             "p50, p90, p95, p99 (or percentile=0.37)")
    for p in _csv(percentile):
        try:
            q = float(p)
        except ValueError:
            q = -1.0
        if q > 1 and q <= 100:
            q /= 100
        if not 0 <= q <= 1:
            raise QueryError(f"percentile={p!r} must be a fraction 0..1 (or a percentage up to 100)")
        if q not in pcts:
            pcts.append(q)
    if (aggs or pcts) and not bucketed:
        raise QueryError("agg/percentile need a bucket (e.g. bucket=1h); without one the readings themselves "
                         "are returned")
    return tuple(aggs), tuple(pcts)


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    parts = _csv(text)
    try:
        box = tuple(float(p) for p in parts)
    except ValueError:
        box = ()
    if len(box) != 4 or box[0] > box[2] or box[1] > box[3]:
        raise QueryError(f"bbox={text!r} must be min_lon,min_lat,max_lon,max_lat")
    return box  # type: ignore[return-value]


def parse_query(params: Mapping[str, str | None], *, now: datetime | None = None,
                max_range: timedelta | None = None) -> HistoryQuery:
    """Build a :class:`HistoryQuery` from query-string style parameters.

    ``sensor`` (comma-separated ids), ``metric``, ``area``, ``tag``/``tags``, ``bbox``;
    ``start`` (required), ``end`` (default now); ``bucket``; ``agg``; ``percentile``; ``tz``;
    ``fill`` (null, previous, linear; needs a bucket); ``path`` (auto, raw, rollup).
    """
    selector = SeriesSelector(sensors=_csv(params.get("sensor") or params.get("sensors")),
                              metrics=_csv(params.get("metric") or params.get("metrics")),
                              area=(params.get("area") or None),
                              tags=_csv(params.get("tag") or params.get("tags")),
                              bbox=_bbox(params.get("bbox")))
    if selector.is_empty():  # selects nothing: answered like a selection that matches nothing
        raise UnknownSeries("no series selected: select series with sensor=ID[,ID..] and/or metric=NAME (or "
                            "area=, tag=, bbox=)")
    now = now or datetime.now(timezone.utc)
    start = parse_time("start", params.get("start"))
    end = parse_time("end", params.get("end"), now)
    if end <= start:
        raise QueryError(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
    if max_range is not None and end - start > max_range:
        raise QueryError(f"the range {end - start} is longer than the limit of {max_range}; query it in parts")
    bucket = parse_bucket(params["bucket"]) if params.get("bucket") else None
    aggs, pcts = parse_aggregates(params.get("agg") or params.get("aggregates"), params.get("percentile"),
                                  bucket is not None)
    fill = params.get("fill") or None
    if fill is not None:
        fill = fill.lower()
        if fill == "none":
            fill = "null"
        if fill not in ("null", "previous", "linear"):
            raise QueryError(f"fill={fill!r} is not known; use null, previous or linear")
        if bucket is None:
            raise QueryError("fill needs a bucket (e.g. bucket=1h&fill=linear)")
    path = (params.get("path") or "auto").lower()
    if path not in ("auto", "raw", "rollup"):
        raise QueryError(f"path={path!r} is not known; use auto, raw or rollup")
    if path == "rollup" and pcts:
        raise QueryError("percentiles are computed from the readings only; drop path=rollup")
    return HistoryQuery(series=selector, start=start, end=end, bucket=bucket, aggregates=aggs, percentiles=pcts,
                        tz=parse_tz(params.get("tz")), fill=fill, path=path)  # type: ignore[arg-type]
