"""`urbanpulse keys ACTION ... --config FILE` works, as every other command and the docs write it.

README.md, docs/grafana.md and docker-compose.yml tell a newcomer to make the first admin key with
`docker compose exec urbanpulse urbanpulse keys create --role admin --name "first admin" --config
/app/config/urbanpulse.compose.yaml`; `keys` took `--config` only before its action, so that command
stopped with `unrecognized arguments: --config`. Now it is taken on either side (the later wins).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services import PG_DSN, check_postgres, create_database, drop_database, unavailable
from urbanpulse.cli import _parser

REPO = Path(__file__).resolve().parent.parent
ACTIONS = {"create": ["--role", "admin", "--name", "first admin"], "list": ["--active"], "revoke": ["3f9a1c07b2"]}
file_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-./", min_size=1, max_size=30).filter(
    lambda s: not s.startswith("-"))


@settings(max_examples=60, deadline=None)
@given(action=st.sampled_from(sorted(ACTIONS)), before=st.booleans(), name=file_names,
       level=st.sampled_from([None, "DEBUG", "WARNING"]))
def test_config_and_log_level_are_taken_before_or_after_the_action(action: str, before: bool, name: str,
                                                                  level: str | None) -> None:
    options = ["--config", name] + (["--log-level", level] if level else [])
    argv = ["keys", *options, action, *ACTIONS[action]] if before else ["keys", action, *ACTIONS[action], *options]
    args = _parser().parse_args(argv)
    assert args.keys_command == action
    assert args.config == Path(name)
    assert args.log_level == level


@settings(max_examples=30, deadline=None)
@given(action=st.sampled_from(sorted(ACTIONS)), first=file_names, second=file_names)
def test_a_config_after_the_action_wins_over_one_before(action: str, first: str, second: str) -> None:
    args = _parser().parse_args(["keys", "--config", first, action, *ACTIONS[action], "--config", second])
    assert args.config == Path(second)


def test_without_config_the_default_stays() -> None:
    args = _parser().parse_args(["keys", "list"])
    assert args.config is None and args.log_level is None


def documented_keys_commands() -> list[str]:
    """Every concrete `urbanpulse keys ...` command line the README, docs/ and docker-compose.yml give
    (continuation lines joined; the README's one-line synopsis with `a|b` alternatives and the commands
    named in a sentence left out)."""
    found = []
    for path in [REPO / "README.md", REPO / "docker-compose.yml", *sorted((REPO / "docs").glob("*.md"))]:
        text = re.sub(r"\\\n\s*(#\s*)?", " ", path.read_text())
        for m in re.finditer(r"urbanpulse (keys (?:create|list|revoke)[^\n`#]*)", text):
            line = m.group(1).strip()
            in_prose = text[m.start() - 1] == "`"  # `urbanpulse keys create` named in a sentence
            if "|" not in line and not in_prose:
                found.append(line)
    return found


def test_the_docs_give_the_compose_command_with_config_after_the_action() -> None:
    assert any("--config" in c for c in documented_keys_commands())


@pytest.mark.parametrize("command", documented_keys_commands())
def test_every_documented_keys_command_parses(command: str) -> None:
    args = _parser().parse_args(shlex.split(command))
    assert args.command == "keys"


def test_keys_create_with_config_after_the_action_makes_a_key_on_that_database(tmp_path: Path) -> None:
    problem = check_postgres()
    if problem is not None:
        unavailable(f"PostgreSQL not reachable: {problem}")
    name, dsn = create_database(PG_DSN, "up_keys_cfg")
    try:
        config = tmp_path / "urbanpulse.yaml"
        config.write_text(f"database: {{dsn: '{dsn}'}}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("URBANPULSE_")}
        cli = [sys.executable, "-m", "urbanpulse.cli", "keys"]
        made = subprocess.run([*cli, "create", "--role", "admin", "--name", "first admin", "--config", str(config)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stderr[-2000:]
        key_id = made.stdout.strip().split("_")[1]
        listed = subprocess.run([*cli, "list", "--config", str(config)], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0, listed.stderr[-2000:]
        assert key_id in listed.stdout and "first admin" in listed.stdout
        assert not (tmp_path / ".urbanpulse").exists(), "the configured database, not an embedded one"
    finally:
        drop_database(name)
