"""``urbanpulse privacy pseudonym --device ID --at TIME``: the re-identification procedure of
docs/privacy.md. A pseudonym cannot be reversed; with the key, the pseudonym of a known device
id for a period can be computed and looked up (a subject-access request, a court order)."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np


def add_privacy_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``privacy`` command and its ``pseudonym`` subcommand."""
    priv = sub.add_parser("privacy", help="privacy tools (pseudonyms of personal devices; docs/privacy.md)")
    psub = priv.add_subparsers(dest="privacy_command", required=True, metavar="ACTION")
    ps = psub.add_parser("pseudonym", help="print the pseudonym a device id has in a period (needs the key)",
                         description="Computes the keyed pseudonym under which readings of a personal device are "
                         "stored, for the rotation period holding --at (default: now). Needs the key "
                         "(privacy.key_file or the privacy.key_env variable); without it no pseudonym can be "
                         "linked to a device.")
    ps.add_argument("--device", required=True, help="the device id as the device sends it")
    ps.add_argument("--at", default=None, help="a time in the period, RFC 3339 (default: now)")
    ps.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration (privacy section)")
    ps.add_argument("--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"])


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
