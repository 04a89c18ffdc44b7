"""``urbanpulse export``: a history query to a CSV, NDJSON or Parquet file, with a progress bar.

Reads the configured database directly (like ``urbanpulse keys``: whoever can reach the
database is already trusted), through exactly the query and export code of
``GET /readings/export``, so the file is the same as the API's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from urbanpulse.cli_options import add_log_level
from urbanpulse.errors import ConfigError

_EPILOG = """\
Examples:
  urbanpulse export --area dongcheng --metric pm2_5 --start 2015-01-01T00:00:00+08:00 \\
      --end 2016-01-01T00:00:00+08:00 --bucket 1h --agg mean,max --tz Asia/Shanghai --output dongcheng-2015.parquet
  urbanpulse export --sensor beijing-dongsi --start 2015-03-01 --end 2015-04-01 --output dongsi.csv

--path raw recomputes buckets from the readings (e.g. to check a rollup); the last line says which path answered.
The format follows the output's extension (.csv, .ndjson, .parquet) unless --format says otherwise;
--output - writes to standard output. Exit status: 0 done, 2 bad query or database error.
"""

_QUERY_OPTIONS = ("sensor", "metric", "area", "tag", "bbox", "start", "end", "bucket", "agg", "percentile", "tz",
                  "fill", "path")


def add_export_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``export`` subcommand's options (the query options of ``GET /readings``)."""
    p = sub.add_parser("export", help="export history (readings or buckets) to CSV, NDJSON or Parquet",
                       description="Write the readings, or per-bucket aggregates, of the selected series to a "
                       "file, streamed with constant memory; each series' unit (the one its readings are stored in, "
                       "as the metric catalogue names it, also where the registry describes the sensor with an alias or "
                       "a UCUM code of it), "
                       "location and licence go into the file (Parquet metadata, CSV '#' lines, the first NDJSON "
                       "line).",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sensor", metavar="ID[,ID..]",
                   help="sensor id(s). Select series with at least one of --sensor, --metric, --area, --tag, --bbox "
                   "(none: exit 2, no series selected)")
    p.add_argument("--metric", metavar="NAME[,NAME..]", help="metric(s), e.g. pm2_5")
    p.add_argument("--area", metavar="AREA[,AREA..]", help="registry area(s)/district(s) (any of them)")
    p.add_argument("--tag", metavar="TAG[,TAG..]", help="registry tags (all must match)")
    p.add_argument("--bbox", metavar="MINLON,MINLAT,MAXLON,MAXLAT", help="bounding box")
    p.add_argument("--start", required=True, help="ISO 8601, inclusive (e.g. 2015-01-01T00:00:00+08:00; a date "
                   "alone is midnight UTC, also with --tz: give the offset for the city's midnight)")
    p.add_argument("--end", help="ISO 8601, exclusive (default: now)")
    p.add_argument("--bucket", help="any width of whole minutes or hours that divides a day (1m, 2m, 5m, 10m, 15m, "
                   "30m, 45m, 1h, 2h, 3h, 4h, 6h, 8h, 12h, ...), 1d or month (default: the readings themselves, "
                   "no aggregates)")
    # the names and the default are query.spec's (ROLLUP_AGGREGATES, DEFAULT_AGGREGATES; tests/test_cli_help.py
    # checks they agree), written out: importing the query code would cost every command's start ~75 ms
    p.add_argument("--agg", help="comma-separated, with --bucket only: count,min,max,mean,sum,stddev,first,last, "
                   "p50,p90,p95,p99 or any pNN (p99.9), median (= p50); avg and std are read as mean and stddev "
                   "(default with --bucket: count,mean,min,max)")
    p.add_argument("--percentile", help="with --bucket only: more percentiles as fractions from 0 to 1, e.g. "
                   "0.25,0.75 (columns p25, p75)")
    p.add_argument("--tz", help="IANA zone (default UTC): 1d and month buckets are its calendar days and months, "
                   "narrower ones are aligned to its local midnight (Asia/Kolkata's hours start at :30), and with "
                   "a zone other than UTC each row also gives the local time; it does not move --start or --end")
    p.add_argument("--fill", choices=["null", "previous", "linear"],
                   help="with --bucket only: give each empty bucket a row (null values, the previous bucket's, or "
                   "linear between its neighbours; count 0, marked filled). Default: an empty bucket has no row")
    p.add_argument("--path", choices=["auto", "raw", "rollup"],
                   help="where buckets are computed, as the API's path= (docs/api.md): auto (default) the rollup "
                   "tables when every bucket boundary and both ends fall on whole UTC minutes and no percentile is "
                   "asked, else the readings; raw always the readings; rollup the rollups only (refused when they "
                   "cannot answer). Both give the same numbers, the rollups faster")
    p.add_argument("--format", choices=["csv", "ndjson", "parquet"],
                   help="default: from --output's extension (.csv; .ndjson or .jsonl; .parquet or .pq); csv for "
                   "standard output or a name without an extension; another extension is refused")
    p.add_argument("--output", required=True, metavar="FILE", help="file to write, or - for standard output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--quality", action="store_true",
                   help="add the data-quality report of the series over the range (one more pass over the readings)")
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file (for database.dsn)")
    add_log_level(p)


FORMAT_OF_SUFFIX = {"csv": "csv", "ndjson": "ndjson", "jsonl": "ndjson", "parquet": "parquet", "pq": "parquet"}


def output_format(args: argparse.Namespace) -> str:
    """--format, else the output file's extension, else (no extension, or standard output) csv. An extension
    that names no export format is refused rather than filled with CSV (`--output city.xlsx` wrote CSV)."""
    if args.format:
        return args.format
    suffix = Path(args.output).suffix.lower().lstrip(".") if args.output != "-" else ""
    if suffix and suffix not in FORMAT_OF_SUFFIX:
        raise ConfigError(f"--output {args.output}: .{suffix} is not an export format; name the file .csv, "
                          f".ndjson or .parquet, or say --format csv|ndjson|parquet")
    return FORMAT_OF_SUFFIX.get(suffix, "csv")


def check_output_writable(output: str) -> None:
    """Refuse, before any query runs, an output file whose folder does not exist or cannot be written."""
    if output == "-":
        return
    folder = Path(output).parent
    if not folder.is_dir():
        raise ConfigError(f"--output {output}: the folder {folder} does not exist; create it or write elsewhere")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"--output {output}: the folder {folder} is not writable; write elsewhere")


def open_output(output: str) -> Any:  # noqa: ANN401 - a binary file
    """The binary file the export writes (standard output for ``-``), or ConfigError saying why not."""
    if output == "-":
        return sys.stdout.buffer
    try:
        return open(output, "wb")  # noqa: SIM115 - closed by the caller after the last chunk
    except OSError as exc:
        raise ConfigError(f"cannot write --output {output}: {exc.strerror}") from exc


def run_export_command(args: argparse.Namespace, settings: Any) -> int:
    """Entry point from :mod:`urbanpulse.cli`."""
    return asyncio.run(_export(args, settings))


async def _export(args: argparse.Namespace, settings: Any) -> int:
    import asyncpg
    from tqdm import tqdm

    from urbanpulse.export.source import estimate_rows
    from urbanpulse.export.stream import open_export
    from urbanpulse.quality.catalogue import MetricCatalogue
    from urbanpulse.query.buckets import count_buckets
    from urbanpulse.query.run import HistoryRunner, QueryLimits, RollupAvailability
    from urbanpulse.query.spec import parse_query
    from urbanpulse.service import resolve_dsn

    q = parse_query({k: getattr(args, k) for k in _QUERY_OPTIONS if getattr(args, k, None) is not None})
    fmt = output_format(args)
    check_output_writable(args.output)
    dsn, embedded = await asyncio.to_thread(resolve_dsn, settings)
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, timeout=settings.database.connect_timeout_s)
        try:
            runner = HistoryRunner(pool, QueryLimits.from_settings(settings.history),
                                   rollups=RollupAvailability.from_settings(settings),
                                   catalogue=MetricCatalogue.load(settings.validation.catalogue,
                                                                  settings.validation.metrics))
            ex = await open_export(runner, q, fmt, quality=args.quality)
            ids = [s.series_id for s in ex.info.series]
            total = (await estimate_rows(runner, q, ids) if q.bucket is None
                     else count_buckets(q.start, q.end, q.bucket, q.tz) * len(ids))
            out = open_output(args.output)
            bar = tqdm(total=total, unit=" rows", unit_scale=True, disable=args.no_progress or args.output == "-",
                       desc=f"{len(ids)} series -> {args.output}", file=sys.stderr)
            try:
                done = 0
                async for chunk in ex.chunks:
                    out.write(chunk)
                    bar.update(ex.writer.rows - done)
                    done = ex.writer.rows
                bar.total = done  # the estimate came from the rollups: end the bar at what was written
                bar.refresh()
            finally:
                bar.close()
                if out is not sys.stdout.buffer:
                    out.close()
        finally:
            await pool.close()
    finally:
        if embedded is not None:
            embedded.stop()  # type: ignore[attr-defined]
    print(f"exported {ex.writer.rows:,} rows of {len(ids)} series ({ex.format}, from {ex.info.path}) -> "
          f"{args.output}", file=sys.stderr)
    return 0
