"""A database that refuses the login, or does not exist, is reported at once with what to fix.

A newcomer's first `urbanpulse migrate` against a DSN with a misspelt database or role used to log
"database not reachable yet" nine times over about 25 s before saying "check that the server is
running", which it was. Waiting cannot change either refusal, so `connect_with_retry` now fails on
the first attempt and names the fix; a server that is not listening is still waited for.
Real PostgreSQL on 127.0.0.1:5432 (tests/services.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services import PG_DSN, check_postgres, dsn_for, free_port, unavailable
from urbanpulse.errors import StorageUnavailable
from urbanpulse.start_ahead import connect_with_retry

RETRY_WARNING = "not reachable yet"


@pytest.fixture(scope="module", autouse=True)
def _postgres() -> None:
    problem = check_postgres()
    if problem is not None:
        unavailable(f"PostgreSQL not reachable: {problem}")


def _refusal(dsn: str, caplog: pytest.LogCaptureFixture) -> tuple[str, list[str]]:
    """The message `connect_with_retry` fails with on `dsn`, and the retry warnings it logged."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="urbanpulse.start_ahead"):
        with pytest.raises(StorageUnavailable) as info:
            asyncio.run(connect_with_retry(dsn, timeout_s=5, attempts=10))
    return str(info.value), [r.getMessage() for r in caplog.records if RETRY_WARNING in r.getMessage()]


database_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=20)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=database_names)
def test_a_database_that_does_not_exist_fails_at_once_saying_to_create_it(
        name: str, caplog: pytest.LogCaptureFixture) -> None:
    dbname = f"up_absent_{name}_{uuid.uuid4().hex[:6]}"
    message, retries = _refusal(dsn_for(PG_DSN, dbname), caplog)
    assert retries == [], f"retried a refusal waiting cannot change: {retries}"
    assert dbname in message and "does not exist" in message
    assert "createdb" in message and "database.dsn" in message


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=database_names)
def test_a_role_that_does_not_exist_fails_at_once_naming_the_login(name: str, caplog: pytest.LogCaptureFixture) -> None:
    role = f"up_nobody_{name}_{uuid.uuid4().hex[:6]}"
    head, _, rest = PG_DSN.partition("://")
    host_db = rest.split("@", 1)[-1]
    message, retries = _refusal(f"{head}://{role}@{host_db}", caplog)
    assert retries == [], f"retried a refusal waiting cannot change: {retries}"
    assert role in message and "refused the login" in message and "database.dsn" in message


def test_a_server_that_is_not_listening_is_still_waited_for(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="urbanpulse.start_ahead"):
        with pytest.raises(StorageUnavailable) as info:
            asyncio.run(connect_with_retry(f"postgresql://postgres@127.0.0.1:{port}/x", timeout_s=2, attempts=2))
    assert [r for r in caplog.records if RETRY_WARNING in r.getMessage()], "a refused TCP connection is retried"
    assert "that the server is running" in str(info.value)


def test_migrate_against_a_missing_database_exits_2_with_the_fix_and_no_traceback(tmp_path: Path) -> None:
    dbname = f"up_absent_{uuid.uuid4().hex[:10]}"
    config = tmp_path / "urbanpulse.yaml"
    config.write_text(f"database: {{dsn: '{dsn_for(PG_DSN, dbname)}'}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("URBANPULSE_")}
    out = subprocess.run([sys.executable, "-m", "urbanpulse.cli", "migrate", "--config", str(config)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert RETRY_WARNING not in out.stderr
    assert f'database "{dbname}" does not exist' in out.stderr and "createdb" in out.stderr
