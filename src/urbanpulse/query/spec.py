"""What a history query asks for, parsed and checked once (HTTP, CLI and export share it).

Every parse error is a :class:`QueryError` whose message names the parameter and what to send.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from urbanpulse.query.buckets import Bucket, parse_bucket, parse_tz
from urbanpulse.query.errors import QueryError, UnknownSeries
from urbanpulse.utc import to_utc

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
    areas: tuple[str, ...] = ()  # any of them (``area=a,b``, as ``GET /sensors`` reads it)
    tags: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None  # min_lon, min_lat, max_lon, max_lat

    @property
    def needs_registry(self) -> bool:
        return bool(self.areas) or bool(self.tags) or self.bbox is not None

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
    """0.5 -> ``p50``, 0.999 -> ``p99.9``, 1e-09 -> ``p0.0000001``: the percentage, written out in full.

    Taken from the fraction's shortest decimal form, so two different fractions never share a column name
    (a fixed number of decimals named 0 and 1e-09 both ``p0``)."""
    percent = (Decimal(repr(float(q) + 0.0)) * 100).normalize()  # + 0.0: -0.0 is named p0
    return "p" + format(percent, "f")


#: a time given as a bare number: refused rather than guessed (epoch seconds? a basic-format date 20261205?)
_BARE_NUMBER = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_TIME_EXAMPLE = "2024-03-31T00:00:00Z, or 2024-03-31 for midnight UTC"


def parse_time(name: str, text: str | None, default: datetime | None = None) -> datetime:
    """The one reading of a time in a history query (``/readings``, ``/readings/export``, ``/quality``, the
    export command): ISO 8601; without a zone it is UTC, a date alone is midnight UTC, so every route takes the
    same forms. A time whose UTC equivalent falls outside years 1..9999 is clamped to the nearest end."""
    if text in (None, ""):
        if default is None:
            raise QueryError(f"{name} is required (ISO 8601, e.g. {_TIME_EXAMPLE})")
        return default
    v = text.strip()
    if "T" in v:
        v = v.replace(" ", "+")  # an unescaped "+02:00" arrives as " 02:00" in a query string
    if _BARE_NUMBER.match(v):
        raise QueryError(f"{name}={text!r} is a bare number, not a time; send ISO 8601, e.g. {_TIME_EXAMPLE}")
    try:
        t = datetime.fromisoformat(v)
    except ValueError as exc:
        raise QueryError(f"{name}={text!r} is not an ISO 8601 time; send e.g. {_TIME_EXAMPLE}") from exc
    return to_utc(t)


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
            q = NAMED_PERCENTILES.get(a) or float(Decimal(_PCT.match(a).group(1)) / 100)  # type: ignore[union-attr]
            if q not in pcts:
                pcts.append(q)
        else:
            raise QueryError(f"agg {a!r} is not known; use count, min, max, mean, sum, stddev, first, last, "
                             "p50, p90, p95, p99 (or percentile=0.37)")
    for p in _csv(percentile):
        q = parse_fraction(p)
        if q not in pcts:
            pcts.append(q)
    if (aggs or pcts) and not bucketed:
        raise QueryError("agg/percentile need a bucket (e.g. bucket=1h); without one the readings themselves "
                         "are returned")
    return tuple(aggs), tuple(pcts)


def parse_fraction(text: str) -> float:
    """One ``percentile=`` value: a fraction from 0 to 1 (0.95 is the 95th percentile), as docs/api.md says.

    A number above 1 is refused, not read as a percentage: 1 would then be the maximum and 1.5 the 1.5th
    percentile, and a planner cannot tell which was meant."""
    try:
        q = float(text)
    except ValueError:
        q = math.nan
    if not 0 <= q <= 1:
        raise QueryError(f"percentile={text!r} must be a fraction from 0 to 1 (e.g. 0.95 for the 95th percentile; "
                         "agg=p95 names it as a percentage)")
    return q + 0.0  # -0 is 0


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
                              areas=_csv(params.get("area")),
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
