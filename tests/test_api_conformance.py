"""Schemathesis (`st run --checks all`) against the running service's own OpenAPI document:
every operation, with the examples, coverage, fuzzing and stateful phases, must give 0 failures
(no 5xx, no undocumented status or media type, no body that breaks its schema, no valid request
rejected and no invalid one accepted, correct `Allow` on OPTIONS and unsupported methods).

The service is `urbanpulse run` (a subprocess) on a fresh PostgreSQL database seeded with a few
open alerts, so alert ids that exist are drawn half of the time and ack/resolve reach the
store. Requests carry an admin key; a second, short run without a key checks that every
protected operation answers a documented 401.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from service_process import ServiceProcess
from urbanpulse.storage.migrations import migrate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TESTS = Path(__file__).resolve().parent

#: Paths whose routes still fail schemathesis; each is to be removed from here when its routes
#: conform. (History's /readings and /readings/export conform: their query rules that JSON Schema
#: cannot express are repaired in tests/schemathesis_hooks.py.)
NOT_YET_CONFORMANT: list[str] = []

_CONFIG = """
[dictionaries.alert_ids]
values = [1, 2, 3]

[parameters]
"path.alert_id" = { dictionary = "alert_ids", probability = 0.5 }
"""


async def _seed(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, "postgres")
        await conn.execute("""
            INSERT INTO series (sensor_id, metric) VALUES ('dongsi-03', 'pm2_5'), ('dongsi-04', 'pm2_5'),
                                                          ('kerb-1', 'speed');
            INSERT INTO alerts (series_id, sensor_id, metric, detector, severity, state, opened_at,
                                last_triggered_at, max_score, triggers)
            SELECT s.id, s.sensor_id, s.metric, 'spike', 'warning', 'open', now() - interval '1 hour', now(),
                   0.9, '[{"ts": "2026-11-30T10:00:00Z", "value": 412.0, "score": 0.9}]'
            FROM series s ORDER BY s.id;
        """)
    finally:
        await conn.close()


def _st(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SCHEMATHESIS_HOOKS="schemathesis_hooks",
               PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "schemathesis.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def service(fresh_db: str, tmp_path: Path):
    asyncio.run(_seed(fresh_db))
    svc = ServiceProcess({"database": {"dsn": fresh_db, "storage_mode": "postgres"}, "log_level": "INFO"},
                         tmp_path).start()
    try:
        yield svc
    finally:
        svc.stop_quietly()


def _excluded() -> list[str]:
    return [arg for path in NOT_YET_CONFORMANT for arg in ("--exclude-path", path)]


def _summary(out: subprocess.CompletedProcess[str]) -> str:
    return f"exit {out.returncode}\n{out.stdout[-12000:]}\n{out.stderr[-3000:]}"


def test_schemathesis_checks_all_finds_no_failure(service: ServiceProcess, tmp_path: Path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(_CONFIG)
    assert httpx.get(f"{service.url}/alerts/1", headers=service.auth("viewer")).status_code == 200
    out = _st("--config-file", str(config), "run", f"{service.url}/openapi.json", "--checks", "all",
              "--header", f"Authorization: Bearer {service.key('admin')}", "--max-examples", "20",
              "--request-timeout", "10", "--seed", "20261130", "--no-color", *_excluded(), cwd=tmp_path)
    assert out.returncode == 0, _summary(out)
    assert "Stateful" in out.stdout and "Fuzzing" in out.stdout, _summary(out)
    assert " failure" not in out.stdout.split("SUMMARY")[-1], _summary(out)
    log = service.log_tail(10**7)
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-5000:]
    assert service.key("admin") not in log

    anonymous = _st("run", f"{service.url}/openapi.json", "--checks", "all", "--max-examples", "3",
                    "--phases", "examples,coverage", "--request-timeout", "10", "--seed", "1", "--no-color",
                    *_excluded(), cwd=tmp_path)
    assert anonymous.returncode == 0, _summary(anonymous)
