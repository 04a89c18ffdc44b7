"""``urbanpulse registry import FILE`` and ``urbanpulse registry export``: the command-line side
of the register, for a data engineer loading the city's sensor list from a spreadsheet."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from urbanpulse.cli_options import add_log_level

_HELP = """\
Import: every row is checked (fields, units against the metric catalogue, duplicate ids); each bad
row is reported with its line number and the rest are imported (or nothing, with --strict).
Re-importing a file changes nothing; a changed row makes a new version of that sensor, effective
from the row's valid_from (default: now), so readings keep the positions of their time.

CSV columns: id,name,description,type,lat,lon,elevation,area,tags,owner,install_date,status,
data_class,licence,metrics,valid_from (only id, name, lat, lon are required). tags: a;b;c.
metrics: metric:unit:interval_s;... e.g. pm2_5:ug/m3:3600;pm10:ug/m3:3600
JSON: an array of objects with the same fields (tags a list, metrics an object).

Exit status: 0 every row imported, 1 some rows rejected (listed on stderr), 2 unreadable file or
invalid configuration.
"""


def add_registry_parser(sub: argparse._SubParsersAction) -> None:
    """The ``registry`` command and its ``import`` / ``export`` subcommands."""
    reg = sub.add_parser("registry", help="import or export the sensor registry (CSV or JSON)",
                         description="The canonical register of the city's sensors.", epilog=_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    rsub = reg.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    imp = rsub.add_parser("import", help="import sensors from a CSV or JSON file",
                          description="Load sensors from a CSV or JSON file into the register; each bad row "
                          "is reported by line and the good ones are imported (all or nothing with --strict).",
                          epilog=_HELP,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("file", type=Path, metavar="FILE", help="a .csv or .json file")
    imp.add_argument("--strict", action="store_true", help="import nothing if any row is bad")
    imp.add_argument("--format", choices=["csv", "json"], default=None, help="default: from the file name")
    exp = rsub.add_parser("export", help="write every registered sensor as CSV or JSON",
                          description="Write the current register in the import format (importing it back "
                          "changes nothing).")
    exp.add_argument("--format", choices=["csv", "json"], default=None,
                     help="default: from --output's name, else csv")
    exp.add_argument("--output", "-o", type=Path, default=None, metavar="FILE", help="default: standard output")
    for p in (imp, exp):
        p.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration (database, catalogue)")
        add_log_level(p)


def run_registry_command(args: argparse.Namespace, settings) -> int:  # noqa: ANN001 - Settings
    """Run ``registry import|export`` against the configured database."""
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings) -> int:  # noqa: ANN001
    from urbanpulse.cli_database import command_connection
    from urbanpulse.quality.catalogue import MetricCatalogue
    from urbanpulse.registry.io import detect_format, export_registry, import_file

    async with command_connection(settings) as conn:
        if args.registry_command == "import":
            v = settings.validation
            report = await import_file(conn, args.file, MetricCatalogue.load(v.catalogue, v.metrics),
                                       fmt=args.format, strict=args.strict)
            for err in report.errors:
                print(f"{args.file}: {err}", file=sys.stderr)
            if not report.applied:
                print(f"{len(report.errors)} bad row(s); --strict: nothing imported", file=sys.stderr)
                return 1
            print(f"imported {report.imported} sensor(s): {report.created} created, {report.updated} updated, "
                  f"{report.unchanged} unchanged; {len(report.errors)} row(s) rejected")
            return 1 if report.errors else 0
        fmt = args.format or (detect_format(args.output) if args.output and args.output.suffix else "csv")
        text = await export_registry(conn, fmt)
        if args.output is None:
            sys.stdout.write(text)
        else:
            args.output.write_text(text, encoding="utf-8")
        return 0
