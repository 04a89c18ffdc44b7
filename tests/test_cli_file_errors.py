"""Commands given a file they cannot write, `--options` that are not an object, or a port out of range
answer with one line and exit 2, not a traceback.

Found walking the commands as a newcomer: `registry export -o` and `subject export --output` into a
folder that does not exist ended in a FileNotFoundError traceback, `decode --options '[1]'` in a
TypeError one, `demo --serve --port 99999` in an OverflowError from bind().
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbanpulse.cli import _parser, file_error_message, main

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                        max_size=2), max_leaves=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values.filter(lambda v: not isinstance(v, dict)))
def test_decode_options_that_are_not_an_object_are_refused_in_one_line(
        value: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    payload = tmp_path / "m.json"
    payload.write_text('{"sensor_id": "a", "metric": "pm2_5", "ts": 0, "value": 1}')
    code = main(["decode", "--format", "json", str(payload), f"--options={json.dumps(value)}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--options must be a JSON object" in err and "Traceback" not in err


@given(port=st.integers(-10**6, 10**6))
def test_demo_port_is_a_tcp_port_or_a_usage_error(port: int) -> None:
    argv = ["demo", "--serve", "--port", str(port)]
    if 1 <= port <= 65535:
        assert _parser().parse_args(argv).port == port
    else:
        with pytest.raises(SystemExit) as info:
            _parser().parse_args(argv)
        assert info.value.code == 2


def test_a_missing_folder_is_named_with_a_hint(tmp_path: Path) -> None:
    missing = tmp_path / "nothere" / "x.csv"
    try:
        missing.open("w")
    except OSError as exc:
        message = file_error_message(exc)
    assert str(missing) in message and "does its folder exist" in message


@pytest.mark.parametrize("command", [["registry", "export", "-o"], ["subject", "export", "--device", "phone-1",
                                                                   "--output"]])
def test_writing_into_a_folder_that_does_not_exist_exits_2_without_a_traceback(
        migrated_db: str, tmp_path: Path, command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("URBANPULSE_")}
    env["URBANPULSE_DATABASE__DSN"] = migrated_db
    target = tmp_path / "nothere" / "out.csv"
    out = subprocess.run([sys.executable, "-m", "urbanpulse.cli", *command, str(target)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert str(target) in out.stderr and "does its folder exist" in out.stderr
