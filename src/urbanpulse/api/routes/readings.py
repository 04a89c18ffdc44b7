"""``/readings`` (history pages), ``/readings/export`` (files) and ``/sensors/{id}/latest``.

The routes only translate HTTP to :mod:`urbanpulse.query` and :mod:`urbanpulse.export`. They
declare the open-data rule: a key of any reading role reads every series, the anonymous
open-data scope (``api.open_data``) only ``open`` ones. Errors are raised as typed exceptions
and answered by the API's one handler: 422 (what to change), 413 (a limit: what to narrow),
404 (no such series), 503 (statement timeout).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from urbanpulse.api.access import ALLOW_OPEN_DATA, FULL, Principal
from urbanpulse.api.page_json import columns_body, items_body
from urbanpulse.api.routes.registry_deps import QueryTime, catalogue
from urbanpulse.export.formats import EXTENSIONS, FORMATS, check_format
from urbanpulse.query.errors import QueryError, UnknownSeries
from urbanpulse.query.run import HistoryRunner, QueryLimits, RollupAvailability, latest
from urbanpulse.query.selection_cache import SelectionCache
from urbanpulse.query.spec import HistoryQuery, parse_query

router = APIRouter(tags=["history"])

#: every bucket width ``bucket=`` takes (widths that divide a day, the day, the month)
BUCKETS = tuple(f"{m}m" for m in range(1, 60) if 1440 % m == 0) + tuple(
    f"{h}h" for h in range(1, 24) if 24 % h == 0) + ("1d", "month")
Bucket = Literal[BUCKETS]  # type: ignore[valid-type]
_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "No stored series matches the selection (or the open-data scope hides it)"},
    413: {"description": "The query is larger than a configured limit; `detail` says what to narrow"},
}

_SELECT = {"sensor", "metric", "area", "tag", "bbox", "start", "end", "bucket", "agg", "percentile", "tz", "fill",
           "path"}
_EXAMPLE = ("/readings?sensor=beijing-dongsi&metric=pm2_5&start=2015-01-01T00:00:00Z&end=2016-01-01T00:00:00Z"
            "&bucket=1h&agg=mean,max&tz=Asia/Shanghai")


def runner(request: Request, principal: Principal) -> HistoryRunner:
    """A runner on the service's pool, with the configured limits and rollups, the service's
    selection cache and the caller's data-class scope (None: every series, registered or not;
    open data: only registered ``open`` ones)."""
    state = request.app.state
    if getattr(state, "history_limits", None) is None:
        settings = getattr(state.service, "settings", None)
        history = getattr(settings, "history", None)
        state.history_limits = QueryLimits.from_settings(history)
        state.history_rollups = RollupAvailability.from_settings(settings)
        ttl = float(getattr(history, "selection_cache_s", 0.0))
        if getattr(state, "history_cache", None) is None:
            state.history_cache = SelectionCache(ttl) if ttl > 0 else None
    scope = None if principal.scope == FULL else principal.scope.data_classes_list
    return HistoryRunner(state.service.pool, state.history_limits, scope,
                         getattr(state, "history_rollups", None), getattr(state, "history_cache", None),
                         catalogue=catalogue(request) if getattr(state.service, "settings", None) else None)


def _query(request: Request, allowed: set[str]) -> HistoryQuery:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise QueryError(f"unknown query parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
    return parse_query(dict(request.query_params))


_PAGE_EXAMPLE = {
    "query": {"start": "2015-01-01T00:00:00+00:00", "end": "2015-01-02T00:00:00+00:00", "bucket": "1h",
              "tz": "Europe/London", "columns": ["mean", "max"], "fill": None, "path": "rollup_1h"},
    "series": [{"sensor_id": "beijing-dongsi", "metric": "pm2_5", "unit": "ug/m3", "lat": 39.929, "lon": 116.417,
                "area": "dongcheng", "licence": "CC-BY-4.0", "data_class": "open"}],
    "items": [{"sensor_id": "beijing-dongsi", "metric": "pm2_5", "bucket": "2015-01-01T00:00:00Z",
               "local": "2015-01-01T00:00:00+00:00", "mean": 35.2, "max": 41.0}],
    "next_cursor": None,
}
_COLUMNS_EXAMPLE = {
    "query": _PAGE_EXAMPLE["query"], "series": _PAGE_EXAMPLE["series"],
    "columns": {"series": [0, 0], "bucket": ["2015-01-01T00:00:00Z", "2015-01-01T01:00:00Z"],
                "local": ["2015-01-01T00:00:00+00:00", "2015-01-01T01:00:00+00:00"], "mean": [35.2, 37.9],
                "max": [41.0, 44.5]},
    "next_cursor": None,
}
_LATEST_EXAMPLE = {"sensor_id": "beijing-dongsi",
                   "readings": [{"metric": "pm2_5", "unit": "ug/m3", "ts": "2017-02-28T23:00:00+00:00", "value": 35.2, "flags": 0}]}


@router.get("/readings", summary="History of one or many series: readings or buckets with aggregates",
            description=f"Example: `{_EXAMPLE}`. Pages follow `next_cursor`.",
            responses={**_RESPONSES, 200: {"description": "One page of rows, with the series' registry metadata",
                                           "content": {"application/json": {"examples": {
                                               "items": {"summary": "shape=items (default): one object per row",
                                                         "value": _PAGE_EXAMPLE},
                                               "columns": {"summary": "shape=columns: one array per column",
                                                           "value": _COLUMNS_EXAMPLE}}}}}})
async def history(
    request: Request, *,
    sensor: str | None = Query(None, description="sensor id(s), comma-separated", examples=["beijing-dongsi"]),
    metric: str | None = Query(None, description="metric name(s), comma-separated", examples=["pm2_5"]),
    area: str | None = Query(None, description="registry area(s)/district(s), comma-separated (any of them)"),
    tag: str | None = Query(None, description="registry tags (all must match), comma-separated"),
    bbox: str | None = Query(None, description="min_lon,min_lat,max_lon,max_lat"),
    start: Annotated[QueryTime, Query(description="ISO 8601, inclusive (a date alone: midnight UTC)",
                                 examples=["2015-01-01T00:00:00Z"])],
    end: QueryTime | None = Query(None, description="ISO 8601, exclusive; default now",
                                 examples=["2016-01-01T00:00:00Z"]),
    bucket: Bucket | None = Query(None, description="1m, 5m, 15m, 30m, 1h, 3h, 6h, 12h, 1d or month (any width "
                                  "that divides a day); none = the readings", examples=["1h"]),
    agg: str | None = Query(None, description="count,min,max,mean,sum,stddev,first,last,p50,p90,p95,p99",
                            examples=["mean,max"]),
    percentile: str | None = Query(None, description="extra percentiles as fractions, e.g. 0.25,0.75"),
    tz: str | None = Query(None, description="IANA zone for day/month buckets and bucket alignment; default UTC",
                           examples=["Europe/London"]),
    fill: Literal["null", "previous", "linear"] | None = Query(None, description="fill empty buckets"),
    path: Literal["auto", "raw", "rollup"] | None = Query(None, description="which stored table answers "
                                                                           "(default auto)"),
    limit: int | None = Query(None, ge=1, le=10_000, description="rows per page (default 1000, at most 10000)"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    shape: Literal["items", "columns"] = Query("items", description="items: one object per row; columns: one "
                                               "array per column (compact, fast to parse: "
                                               "`pandas.DataFrame(body['columns'])`)"),
    principal: Principal = ALLOW_OPEN_DATA,
) -> Response:
    """Readings (no ``bucket``) or per-bucket aggregates, ordered by series then time."""
    q = _query(request, _SELECT | {"limit", "cursor", "shape"})
    page = await runner(request, principal).page(q, limit=limit, cursor=cursor)
    if shape == "columns":
        return Response(columns_body(page), media_type="application/json")
    return Response(items_body(page), media_type="application/json")


@router.get("/readings/export", summary="The same query as a file: CSV, NDJSON or Parquet, streamed",
            description="Streams with constant memory. CSV carries the query, each series' unit, location "
                        "and licence (and with quality=true the data-quality report) in `#` comment lines (pandas: "
                        "`read_csv(url, comment='#')`); NDJSON in its first line; Parquet in the file's key-value "
                        "metadata (`urbanpulse`).", response_class=StreamingResponse,
            responses={**_RESPONSES, 200: {"description": "The file, streamed", "content": {
                "text/csv": {"schema": {"type": "string"},
                             "example": "# urbanpulse export ...\nsensor_id,metric,ts_utc,value\n"
                                        "beijing-dongsi,pm2_5,2015-01-01 00:00:00,35.2\n"},
                "application/x-ndjson": {"schema": {"type": "string"},
                                         "example": '{"sensor_id":"beijing-dongsi","metric":"pm2_5",'
                                                    '"ts":"2015-01-01T00:00:00+00:00","value":35.2}\n'},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"},
                                                   "example": "(a Parquet file)"}}}})
async def export(
    request: Request, *,
    format: Literal["csv", "ndjson", "parquet"] = Query("csv", description="file format"),
    sensor: str | None = Query(None), metric: str | None = Query(None), area: str | None = Query(None),
    tag: str | None = Query(None), bbox: str | None = Query(None), start: Annotated[QueryTime, Query()],
    end: QueryTime | None = Query(None), bucket: Bucket | None = Query(None), agg: str | None = Query(None),
    percentile: str | None = Query(None), tz: str | None = Query(None),
    fill: Literal["null", "previous", "linear"] | None = Query(None),
    path: Literal["auto", "raw", "rollup"] | None = Query(None),
    quality: bool = Query(False, description="include the data-quality report of the series over the range "
                                             "(one more pass over the readings before the first row)"),
    principal: Principal = ALLOW_OPEN_DATA,
) -> StreamingResponse:
    """The rows of ``/readings`` for the whole range, as one file."""
    q = _query(request, _SELECT | {"format", "quality"})
    from urbanpulse.export.stream import open_export  # pyarrow: loaded on the first export, not at start-up

    fmt = check_format(format)
    ex = await open_export(runner(request, principal), q, fmt, quality=quality)
    name = f"urbanpulse-{q.start:%Y%m%d}-{q.end:%Y%m%d}.{EXTENSIONS[fmt]}"
    return StreamingResponse(ex.chunks, media_type=FORMATS[fmt],
                             headers={"Content-Disposition": f'attachment; filename="{name}"',
                                      "X-Urbanpulse-Path": ex.info.path})


@router.get("/sensors/{sensor_id}/latest", summary="The newest reading of each metric of a sensor",
            responses={200: {"description": "The newest reading of each metric",
                             "content": {"application/json": {"example": _LATEST_EXAMPLE}}},
                       404: {"description": "The sensor has no stored readings (or the open-data scope hides it)"}})
async def sensor_latest(request: Request, sensor_id: str = Path(..., examples=["beijing-dongsi"]),
                        principal: Principal = ALLOW_OPEN_DATA) -> Response:
    """``{"sensor_id", "readings": [{"metric", "unit", "ts", "value", "flags"}]}``; 404 if the sensor has no
    readings. ``unit`` as ``/readings`` gives it: the metric catalogue's name for it (``registry.select.stored_unit``)."""
    run = runner(request, principal)
    rows = await latest(run.pool, sensor_id, run.data_classes, run.catalogue)
    if not rows:
        raise UnknownSeries(f"sensor {sensor_id!r} has no stored readings"
                            f"{' in the open-data scope' if run.data_classes is not None else ''}; "
                            "GET /sensors lists the sensors")
    for r in rows:
        r["ts"] = r["ts"].isoformat()
    return Response(orjson.dumps({"sensor_id": sensor_id, "readings": rows}), media_type="application/json")
