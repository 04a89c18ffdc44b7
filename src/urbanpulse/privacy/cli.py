"""``urbanpulse privacy pseudonym --device ID --at TIME``: the re-identification procedure of
docs/privacy.md. A pseudonym cannot be reversed; with the key, the pseudonym of a known device
id for a period can be computed and looked up (a subject-access request, a court order)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from urbanpulse.cli_options import add_log_level


def add_privacy_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``privacy`` command and its ``pseudonym`` subcommand."""
    priv = sub.add_parser("privacy", help="privacy tools (pseudonyms of personal devices; docs/privacy.md)",
                          description="Privacy tools. Device ids of personal sources are stored only as keyed "
                          "pseudonyms that change every rotation period; `pseudonym` computes one with the key, "
                          "to find a device's rows (docs/privacy.md, re-identification).",
                          epilog="Example: urbanpulse privacy pseudonym --device phone-17 --at 2026-11-30T12:00:00Z "
                          "--config urbanpulse.yaml\n\nExit status: 0 done, 2 no key, bad option or invalid "
                          "configuration.", formatter_class=argparse.RawDescriptionHelpFormatter)
    psub = priv.add_subparsers(dest="privacy_command", required=True, metavar="ACTION")
    ps = psub.add_parser("pseudonym", help="print the pseudonym a device id has in a period (needs the key)",
                         description="Computes the keyed pseudonym under which readings of a personal device are "
                         "stored, for the rotation period holding --at (default: now). Needs the key "
                         "(privacy.key_file or the privacy.key_env variable); without it no pseudonym can be "
                         "linked to a device.")
    ps.add_argument("--device", required=True, help="the device id as the device sends it")
    ps.add_argument("--at", default=None, help="a time in the period, RFC 3339 (default: now)")
    ps.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration (privacy section)")
    add_log_level(ps)


def run_privacy_command(args: Any, settings: Any) -> int:  # noqa: ANN401
    """Print ``<period> <pseudonym>``; a missing key is a ConfigError (exit status 2)."""
    from urbanpulse.errors import ConfigError
    from urbanpulse.privacy.pseudonyms import Pseudonymiser, load_key

    p = settings.privacy
    key = load_key(p.key_file, p.key_env)
    if key is None:
        raise ConfigError(f"no pseudonym key: set privacy.key_file or the environment variable {p.key_env}")
    at = datetime.fromisoformat(args.at) if args.at else datetime.now(timezone.utc)
    if at.tzinfo is None:
        raise ConfigError("--at needs a UTC offset, e.g. 2026-11-30T12:00:00Z")
    ts_us = at.timestamp() * 1e6
    pseudo = Pseudonymiser(key, p.rotation)
    print(pseudo.label_of(ts_us), pseudo.apply([args.device], np.array([ts_us]))[0])
    return 0


def add_subject_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``subject`` command: ``export`` and ``erase`` for one device (docs/privacy.md)."""
    subj = sub.add_parser("subject", help="subject access (export) and erasure for one device (docs/privacy.md)",
                          description="A data subject's requests for one device: `export` prints everything "
                          "held for it, `erase` deletes it. Both are recorded in the append-only privacy_audit "
                          "table; a personal device is found by its pseudonyms, which needs the key.",
                          epilog="Examples:\n  urbanpulse subject export --device phone-17 --format csv --output "
                          "phone-17.csv\n  urbanpulse subject erase --device phone-17 --actor 'dpo ticket 42'\n\n"
                          "Exit status: 0 done, 2 no key where one is needed, bad option or database error.",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    ssub = subj.add_subparsers(dest="subject_command", required=True, metavar="ACTION")
    for name, text in (("export", "print everything held for a device (series, readings, alerts, quarantine)"),
                       ("erase", "delete every row derived from a device (readings, rollups, alerts, quarantine)")):
        sp = ssub.add_parser(name, help=text, description=text + ". Personal devices are found by their "
                             "pseudonyms for every rotation period since --since (needs the key). Written to the "
                             "append-only privacy_audit table.")
        sp.add_argument("--device", required=True, help="the device id as the device sends it")
        sp.add_argument("--since", default=None, help="RFC 3339; first period searched (default: 3 years ago)")
        sp.add_argument("--actor", default=None, help="who asks, for the audit table (default: your user name)")
        sp.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration (database, privacy)")
        add_log_level(sp)
        if name == "export":
            sp.add_argument("--format", choices=["json", "csv"], default="json", help="default: json")
            sp.add_argument("--output", type=Path, default=None, metavar="FILE",
                            help="file to write (default: stdout)")


def run_subject_command(args: Any, settings: Any) -> int:  # noqa: ANN401
    """Run ``subject export`` / ``subject erase`` against the configured database."""
    import asyncio
    from datetime import timedelta

    from urbanpulse.privacy.pseudonyms import Pseudonymiser, load_key
    from urbanpulse.privacy.subject import erase_subject, export_subject, to_csv, to_json

    p = settings.privacy
    key = load_key(p.key_file, p.key_env)
    pseudo = Pseudonymiser(key, p.rotation) if key is not None else None
    since = datetime.fromisoformat(args.since) if args.since else datetime.now(timezone.utc) - timedelta(days=3 * 366)
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)

    async def go() -> int:
        from urbanpulse.cli_database import command_connection

        async with command_connection(settings, apply_policies=True) as conn:
            if args.subject_command == "export":
                held = await export_subject(conn, args.device, pseudo, key, since, args.actor)
                text = to_json(held) if args.format == "json" else to_csv(held)
                if args.output:
                    args.output.write_text(text)
                else:
                    print(text)
                return 0
            counts = await erase_subject(conn, args.device, pseudo, key, since, args.actor)
            print(json.dumps(counts))
            return 0
    if key is None and p.classes_in_use() & {"personal"}:
        from urbanpulse.errors import ConfigError

        raise ConfigError(f"a personal device is stored under pseudonyms: set privacy.key_file or {p.key_env}")
    if args.subject_command == "export" and args.output:
        check_output_folder(args.output)
    return asyncio.run(go())


def check_output_folder(output: Path) -> None:
    """Refuse an ``--output`` whose folder does not exist before anything is read or audited: the
    export appends its ``privacy_audit`` row, and a file that then cannot be written left the audit
    saying the subject's data was exported when nothing was delivered."""
    from urbanpulse.errors import ConfigError

    folder = output.parent
    if not folder.is_dir():
        raise ConfigError(f"--output {output}: does its folder exist? {folder} does not: create it or choose "
                          "another file (nothing was exported or audited)")
