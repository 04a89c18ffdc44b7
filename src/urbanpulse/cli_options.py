"""Options that every ``urbanpulse`` subcommand shares, defined once so that each command's
``--help`` explains them the same way (the commands' parsers live beside their code)."""

from __future__ import annotations

import argparse

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_log_level(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--log-level``: without it the configuration's ``log_level`` (INFO unless set) applies,
    or ``default`` where a command sets one of its own."""
    said = default or "the configuration's log_level, INFO unless set"
    parser.add_argument("--log-level", default=default, choices=LOG_LEVELS,
                        help=f"how much to log on stderr (default: {said})")
