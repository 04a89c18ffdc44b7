"""Every documented history query that asks for buckets on a city's clock (`tz` other than UTC)
gives a range that starts and ends at that city's midnight.

`tz` sets the buckets, not the range: a date alone is midnight UTC. `urbanpulse export --help`'s
example (`--start 2015-01-01 --end 2016-01-01 --tz Asia/Shanghai`) therefore left out Beijing's
first eight hours of 2015 and added eight of 2016 (a planner asking for monthly means got a 13th
month of 8 readings), and docs/api.md's London example lost the first hour of October. Checked
over the export command's help, README.md and docs/*.md, with the service's own time parser.
"""

from __future__ import annotations

import re
import shlex
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import pytest

from urbanpulse.cli import _parser
from urbanpulse.query.spec import parse_time

ROOT = Path(__file__).resolve().parents[1]


def _export_help() -> str:
    sub = next(a for a in _parser()._subparsers._group_actions if hasattr(a, "choices"))  # type: ignore[union-attr]
    return sub.choices["export"].format_help()


def _texts() -> dict[str, str]:
    out = {"urbanpulse export --help": _export_help(), "README.md": (ROOT / "README.md").read_text()}
    out.update({f"docs/{p.name}": p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))})
    return out


def documented_queries(text: str) -> list[dict[str, str]]:
    """start, end and tz of each `urbanpulse export` command and each /readings URL in `text`."""
    found = []
    joined = re.sub(r"\\\n\s*", " ", text)
    for line in joined.splitlines():
        if "urbanpulse export " in line and "--start" in line:
            words = shlex.split(line.split("urbanpulse export ", 1)[1].split("#")[0], posix=True)
            opts = {w[2:]: v for w, v in zip(words, words[1:]) if w.startswith("--")}
            found.append({k: opts[k] for k in ("start", "end", "tz") if k in opts})
        for url in re.findall(r"/readings(?:/export)?\?[^'\"\s`]+", line):
            q = {k: unquote(v[0]) for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}
            found.append({k: q[k] for k in ("start", "end", "tz") if k in q})
    return found


def _midnight_in(tz: str, when: datetime) -> bool:
    local = when.astimezone(ZoneInfo(tz))
    return (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)


CASES = [(where, q) for where, text in _texts().items() for q in documented_queries(text)
         if q.get("tz", "UTC") != "UTC" and "start" in q]


def test_the_checker_finds_the_examples_and_refuses_a_bare_date_on_a_city_clock() -> None:
    assert {where for where, _ in CASES} >= {"urbanpulse export --help", "docs/api.md"}
    bad = documented_queries("urbanpulse export --start 2015-01-01 --end 2016-01-01 --tz Asia/Shanghai --output x.csv")
    assert not _midnight_in(bad[0]["tz"], parse_time("start", bad[0]["start"]))


@pytest.mark.parametrize(("where", "query"), CASES, ids=[f"{w}:{q['start']}" for w, q in CASES])
def test_a_documented_range_on_a_city_clock_runs_from_its_midnight(where: str, query: dict[str, str]) -> None:
    for bound in ("start", "end"):
        if bound in query:
            when = parse_time(bound, query[bound])
            assert _midnight_in(query["tz"], when), (
                f"{where}: {bound}={query[bound]} is {when.astimezone(ZoneInfo(query['tz']))} in {query['tz']}, "
                "not its midnight: the first or last bucket covers part of a day")
