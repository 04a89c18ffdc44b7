"""A typo on the command line is said, not passed over (newcomer43b, items 3 and 4 of newcomer43's walkthrough).

Before: ``urbanpulse detect --metric nosuchmetric`` scored with the default settings and exited 0 without a word
(the metric only selects per-metric settings); ``demo --stations 0`` replayed a station count nobody asked for;
``urbanpulse --bogus`` said "the following arguments are required: COMMAND". Now the unknown metric is exit 2
naming the closest known ones, a station count below 1 is refused by the parser, and an unknown option before
the COMMAND is named as unrecognized. Properties over generated names and counts; the commands as subprocesses."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from urbanpulse.cli import _parser, check_detect_metric, known_metrics, parse_command_line
from urbanpulse.config import load_settings
from urbanpulse.errors import ConfigError

DEFAULTS = load_settings(None)
KNOWN = sorted(known_metrics(DEFAULTS))
NAMES = st.text(st.characters(whitelist_categories=("Ll", "Nd"), whitelist_characters="_."), min_size=1, max_size=24)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("URBANPULSE_")}
    return subprocess.run([sys.executable, "-m", "urbanpulse.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_shipped_catalogue_is_known():
    assert {"pm2_5", "temperature"} <= set(KNOWN)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(KNOWN))
def test_every_known_metric_is_accepted(metric: str):
    check_detect_metric(metric, DEFAULTS)


@settings(max_examples=300, deadline=None)
@given(NAMES)
def test_a_metric_nothing_knows_is_refused_naming_it(metric: str):
    assume(metric not in KNOWN)
    with pytest.raises(ConfigError, match="matches no metric") as err:
        check_detect_metric(metric, DEFAULTS)
    assert repr(metric) in str(err.value) and "validation.metrics" in str(err.value)


@settings(max_examples=100, deadline=None)
@given(NAMES)
def test_a_metric_the_configuration_adds_is_accepted(metric: str):
    assume(metric not in KNOWN)
    own = load_settings(None, validation={"metrics": {metric: {"unit": "x", "min": 0, "max": 1}}})
    check_detect_metric(metric, own)
    tuned = load_settings(None, detection={"metrics": {metric: {}}})
    check_detect_metric(metric, tuned)


def test_a_typo_names_the_metric_it_was_close_to():
    with pytest.raises(ConfigError, match="did you mean pm2_5"):
        check_detect_metric("pm25", DEFAULTS)


def test_detect_with_an_unknown_metric_exits_2_and_writes_nothing(tmp_path: Path):
    (tmp_path / "in.csv").write_text("timestamp,value\n" + "".join(f"{1700000000 + 60 * i},{i % 7}\n"
                                                                   for i in range(50)))
    out = _cli("detect", "--input", "in.csv", "--metric", "nosuchmetric", "--output", "out.csv", cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr[-2000:])
    assert "'nosuchmetric' matches no metric" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "out.csv").exists()


@settings(max_examples=200, deadline=None)
@given(st.integers(max_value=0))
def test_demo_refuses_fewer_than_one_station(count: int):
    err = io.StringIO()
    with pytest.raises(SystemExit) as stop, contextlib.redirect_stderr(err):
        _parser().parse_args(["demo", "--stations", str(count)])
    assert stop.value.code == 2 and f"must be 1 or more stations (the dataset has 12), got {count}" in err.getvalue()


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=10**6))
def test_demo_takes_one_station_or_more(count: int):
    assert _parser().parse_args(["demo", "--stations", str(count)]).stations == count


def test_demo_says_why_0_stations_is_refused(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["demo", "--stations", "0"])
    assert "argument --stations: must be 1 or more stations" in capsys.readouterr().err


OPTION_LIKE = st.builds(lambda dashes, name: dashes + name, st.sampled_from(["-", "--"]),
                        st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd")), min_size=1, max_size=12))


@settings(max_examples=300, deadline=None)
@given(OPTION_LIKE, st.sampled_from([[], ["migrate"], ["demo", "--hours", "1"]]))
def test_an_unknown_option_before_the_command_is_named(option: str, rest: list[str]):
    assume(not "--help".startswith(option) and option != "-h")
    err = io.StringIO()
    with pytest.raises(SystemExit) as stop, contextlib.redirect_stderr(err):
        parse_command_line([option, *rest])
    assert stop.value.code == 2 and f"unrecognized arguments: {option} (" in err.getvalue()


def test_urbanpulse_bogus_says_bogus_is_unrecognized(tmp_path: Path):
    out = _cli("--bogus", cwd=tmp_path)
    assert out.returncode == 2
    assert "unrecognized arguments: --bogus" in out.stderr and "required: COMMAND" not in out.stderr
    out = _cli("--config", "urbanpulse.yaml", "migrate", cwd=tmp_path)
    assert out.returncode == 2 and "unrecognized arguments: --config" in out.stderr
    assert "required: COMMAND" in _cli(cwd=tmp_path).stderr  # nothing at all: the COMMAND is what is missing
