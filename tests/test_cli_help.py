"""Every ``urbanpulse`` command explains itself: each command and subcommand has a one-line help
(shown in its parent's list) and a description of what it does, every option and argument says
what it is for, and the README's command list names every command. Walked over the real parser,
so a command or option added without an explanation fails here."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from urbanpulse.cli import _parser

REPO = Path(__file__).resolve().parent.parent


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """(command path, its parser, its help line in the parent's list) for every (sub)command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), sub, helps.get(name)
                yield from commands(sub, (*path, name))


ALL = list(commands(_parser()))
IDS = [" ".join(p) for p, _, _ in ALL]


def test_every_command_is_walked() -> None:
    names = set(IDS)
    assert {"run", "migrate", "demo", "keys create", "registry import", "privacy pseudonym", "subject erase"} <= names


@pytest.mark.parametrize("path,parser,line", ALL, ids=IDS)
def test_each_command_has_a_help_line_and_a_description(path: tuple[str, ...], parser: argparse.ArgumentParser,
                                                        line: str | None) -> None:
    assert line and len(line) > 10, f"`urbanpulse {' '.join(path)}` has no help line in its parent's list"
    assert parser.description and len(parser.description) > 20, \
        f"`urbanpulse {' '.join(path)} --help` does not say what the command does (no description)"


@pytest.mark.parametrize("path,parser,line", ALL, ids=IDS)
def test_each_option_and_argument_says_what_it_is_for(path: tuple[str, ...], parser: argparse.ArgumentParser,
                                                      line: str | None) -> None:
    silent = [a.option_strings[-1] if a.option_strings else a.metavar or a.dest for a in parser._actions
              if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
              and a.help is not argparse.SUPPRESS and not (a.help or "").strip()]
    assert silent == [], f"`urbanpulse {' '.join(path)} --help` leaves these unexplained: {silent}"


def test_the_readme_command_list_names_every_command() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Commands", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    listed = set(re.findall(r"^urbanpulse ([a-z]+)", block, re.M))
    top = {p[0] for p, _, _ in ALL if len(p) == 1}
    assert top - listed == set(), f"README.md's Commands block lacks {sorted(top - listed)}"


def _export_options() -> dict[str, str]:
    (export,) = [p for path, p, _ in ALL if path == ("export",)]
    return {a.option_strings[-1]: a.help or "" for a in export._actions if a.option_strings}


def test_export_help_names_every_bucket_aggregate_and_default_the_query_takes() -> None:
    """product47: `export --help` listed 8 bucket widths of the 36 the query takes and 12 aggregates without the
    default (count,mean,min,max), `median`, any pNN, or that --agg, --percentile and --fill need --bucket; it did
    not say that a selection is required, what an empty bucket gives without --fill, or which extensions and
    standard output give which --format. Each is checked against the query code itself."""
    from urbanpulse.query.buckets import parse_bucket
    from urbanpulse.query.errors import QueryError
    from urbanpulse.query.spec import DEFAULT_AGGREGATES, NAMED_PERCENTILES, ROLLUP_AGGREGATES, parse_aggregates

    from urbanpulse.export.cli import FORMAT_OF_SUFFIX

    opts = {k: " ".join(v.split()) for k, v in _export_options().items()}
    bucket = opts["--bucket"]
    taken = []
    for text in [f"{n}m" for n in range(1, 1441)] + [f"{n}h" for n in range(1, 25)]:
        try:
            parse_bucket(text)
            taken.append(text)
        except QueryError:
            pass
    assert "divides a day" in bucket and "1d" in bucket and "month" in bucket
    for example in re.findall(r"\b(\d+[mh])\b", bucket):
        assert example in taken, f"--bucket's help offers {example}, which the query refuses"
    agg = opts["--agg"]
    assert f"default with --bucket: {','.join(DEFAULT_AGGREGATES)}" in agg
    for name in (*ROLLUP_AGGREGATES, *NAMED_PERCENTILES, "pNN"):
        assert name in agg, f"--agg's help does not name {name}"
    assert parse_aggregates("p99.9,median,avg,std", None, True)  # what the help offers, the query takes
    for option in ("--agg", "--percentile", "--fill"):
        assert "with --bucket only" in opts[option], option
    assert "an empty bucket has no row" in opts["--fill"]
    assert "at least one of --sensor, --metric, --area, --tag, --bbox" in opts["--sensor"]
    for suffix in FORMAT_OF_SUFFIX:
        assert f".{suffix}" in opts["--format"], suffix
    assert "standard output" in opts["--format"]
