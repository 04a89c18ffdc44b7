"""Schemathesis hooks for tests/test_api_conformance.py (loaded through SCHEMATHESIS_HOOKS).

JSON Schema cannot say that a maintenance window's ``ends_at`` comes after its ``starts_at``;
the API answers such a body 422, which is right. So that generated bodies valid by the schema
are also valid by that rule, the two times of a generated window are put in order.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import schemathesis


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@schemathesis.hook("map_body").apply_to(path="/maintenance", method="POST")
def order_window(context: schemathesis.HookContext, body: Any) -> Any:
    if isinstance(body, dict):
        starts, ends = _time(body.get("starts_at")), _time(body.get("ends_at"))
        if starts and ends and starts.tzinfo and ends.tzinfo and ends <= starts:
            if ends == starts:
                ends = starts + timedelta(seconds=1) if starts.year < 9999 else starts
                starts = ends - timedelta(seconds=1)
            else:
                starts, ends = ends, starts
            body = {**body, "starts_at": starts.isoformat(), "ends_at": ends.isoformat()}
    return body


# -- /readings and /readings/export (history) ---------------------------------------------------
# The query string has rules JSON Schema cannot say: at least one of sensor/metric/area/tag/bbox,
# start before end (ISO 8601 with a zone), an IANA tz, aggregates and percentiles from a
# vocabulary and only with a bucket, fill only with a bucket, path=rollup only where the rollups
# answer, and a cursor made by the API. The API answers each broken rule 422 with what to
# change, which is right; so that generated queries valid by the schema are also valid by these
# rules, they are repaired here (values kept where they already are valid).

_AGGS = {"count", "min", "max", "mean", "sum", "stddev", "first", "last", "p50", "p90", "p95", "p99"}


def _valid_tz(name: Any) -> bool:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(str(name))
        return True
    except Exception:  # noqa: BLE001 - anything ZoneInfo refuses
        return False


def _valid_time(text: Any) -> bool:
    t = _time(text)
    return t is not None and t.tzinfo is not None and 1900 <= t.year <= 2200


@schemathesis.hook("map_query").apply_to(path_regex=r"^/readings(/export)?$")
def valid_history_query(context: schemathesis.HookContext, query: Any) -> Any:
    if not isinstance(query, dict):
        return query
    q = {k: v for k, v in query.items() if v not in (None, "")}
    if not any(q.get(k) for k in ("sensor", "metric", "area", "tag", "bbox")):
        q["sensor"] = "dongsi-03"
    for key in ("area", "tag", "bbox"):  # registry filters need registered sensors; the seed has none
        q.pop(key, None)
    q.pop("cursor", None)
    start = q.get("start") if _valid_time(q.get("start")) else "2026-11-01T00:00:00Z"
    end = q.get("end") if _valid_time(q.get("end")) else None
    if end is not None and _time(end) <= _time(start):
        end = None
    q["start"] = start
    if end is None:
        q.pop("end", None)
        q["start"] = "2026-11-01T00:00:00Z" if _time(start) > datetime.now(_time(start).tzinfo) else start
    else:
        q["end"] = end
    if "tz" in q and not _valid_tz(q["tz"]):
        q.pop("tz")
    aggs = [a for a in str(q.get("agg", "")).split(",") if a.strip().lower() in _AGGS]
    if aggs and "bucket" in q:
        q["agg"] = ",".join(aggs)
    else:
        q.pop("agg", None)
    q.pop("percentile", None)
    if "bucket" not in q:
        q.pop("fill", None)
    if q.get("path") == "rollup":
        q["path"] = "auto"
    return q


# -- /open/personal-aggregates (privacy/kanon.py) ------------------------------------------------
# start before end, and at most 31 days apart with bucket 1h (366 with 1d): rules JSON Schema cannot
# say; the API answers a broken one 422 with what to change. Generated queries are put in order.

@schemathesis.hook("map_query").apply_to(path="/open/personal-aggregates", method="GET")
def valid_aggregate_query(context: schemathesis.HookContext, query: Any) -> Any:
    if not isinstance(query, dict):
        return query
    q = dict(query)
    start, end = _time(q.get("start")), _time(q.get("end"))
    if start is None or end is None or start.tzinfo is None or end.tzinfo is None:
        return q  # not a valid time: the 422 is right
    if end < start:
        start, end = end, start
    if end == start or end - start > timedelta(days=31):
        end = start + timedelta(hours=1) if start.year < 9999 else start
        start = end - timedelta(hours=1)
    return {**q, "start": start.isoformat(), "end": end.isoformat()}


# -- /quality ------------------------------------------------------------------------------------
# start before end, start not in the future, and at most 366 days up to now (newcomer47: such a range
# used to be cut or answered empty; now it is a 422 saying what to ask): generated ranges are put so.

@schemathesis.hook("map_query").apply_to(path="/quality", method="GET")
def valid_quality_range(context: schemathesis.HookContext, query: Any) -> Any:
    if not isinstance(query, dict):
        return query
    q = dict(query)
    from datetime import timezone

    now = datetime.now(timezone.utc)
    start, end = _time(q.get("start")), _time(q.get("end"))
    if start is None and end is not None and end.tzinfo is not None and end - timedelta(days=1) >= now:
        q["end"] = now.isoformat()  # only an end: the day before it is reported, so not in the future
        return q
    if start is None or start.tzinfo is None or (end is not None and end.tzinfo is None):
        return q  # not a valid time (or only an end): the 422 or the default is right
    if start >= now or not 1900 <= start.year:
        start = now - timedelta(days=1)
    if end is not None and end <= start:
        end = start + timedelta(hours=1)
    if (min(end, now) if end is not None else now) - start > timedelta(days=366):
        end = start + timedelta(days=1)
    q["start"] = start.isoformat()
    if end is not None:
        q["end"] = end.isoformat()
    return q
