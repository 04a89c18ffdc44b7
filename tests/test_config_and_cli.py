"""Configuration loading (YAML + URBANPULSE_* environment) and the ``urbanpulse`` command line.

CLI tests run the real console script in a child process, with a scrubbed environment and a
temporary working directory, and check exit codes and what the user is told.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from hypothesis import given, settings, strategies as st

from urbanpulse.config import Settings, load_settings
from urbanpulse.errors import ConfigError



@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the environment: make sure the developer's own URBANPULSE_* leak in nowhere."""
    for key in list(os.environ):
        if key.startswith("URBANPULSE_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str, name: str = "urbanpulse.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- load_settings ------------------------------------------------------------------------


def test_defaults_need_no_file_and_no_brokers() -> None:
    s = load_settings()
    assert s.database.dsn is None
    assert s.mqtt.enabled is False and s.kafka.enabled is False
    assert s.api.enabled is True
    assert s.validation.max_payload_bytes == 256 * 1024


def test_yaml_file_values_are_loaded(tmp_path: Path) -> None:
    path = write(tmp_path, """
database:
  dsn: postgresql://ingest@db.example:5432/city
  timescaledb:
    compress_after: 2 days
mqtt:
  enabled: true
  host: broker.example
  port: 8883
  topic_templates: ["city/{district}/{sensor_id}/{metric}"]
validation:
  max_age_s: null
  metrics:
    co2: {unit: ppm, min: 0, max: 40000}
log_level: debug
""")
    s = load_settings(path)
    assert s.database.dsn == "postgresql://ingest@db.example:5432/city"
    assert s.database.timescaledb.compress_after == timedelta(days=2)
    assert (s.mqtt.enabled, s.mqtt.host, s.mqtt.port) == (True, "broker.example", 8883)
    assert s.mqtt.topic_templates == ["city/{district}/{sensor_id}/{metric}"]
    assert s.validation.max_age_s is None
    assert s.validation.metrics["co2"]["unit"] == "ppm"
    assert s.log_level == "DEBUG"
    assert s.kafka.enabled is False  # untouched sections keep their defaults


def test_environment_overrides_the_file_and_keeps_the_rest_of_the_section(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, """
kafka:
  enabled: false
  bootstrap_servers: broker-1:9092,broker-2:9092
  topics: [city.readings]
""")
    monkeypatch.setenv("URBANPULSE_KAFKA__ENABLED", "true")
    monkeypatch.setenv("URBANPULSE_DATABASE__DSN", "postgresql://env@host/db")
    s = load_settings(path)
    assert s.kafka.enabled is True
    assert s.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert s.kafka.topics == ["city.readings"]
    assert s.database.dsn == "postgresql://env@host/db"


def test_environment_alone_configures_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URBANPULSE_KAFKA__ENABLED", "true")
    monkeypatch.setenv("URBANPULSE_INGEST__WRITERS", "4")
    monkeypatch.setenv("URBANPULSE_MQTT__TOPICS", '["a/#", "b/+"]')
    s = load_settings()
    assert s.kafka.enabled is True
    assert s.ingest.writers == 4
    assert s.mqtt.topics == ["a/#", "b/+"]


def test_keyword_overrides_merge_into_file_sections(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt:\n  host: broker.example\n")
    s = load_settings(path, mqtt={"port": 1999})
    assert (s.mqtt.host, s.mqtt.port) == ("broker.example", 1999)


def test_out_of_range_field_gives_config_error_naming_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt:\n  port: 70000\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "mqtt.port" in str(err.value)
    assert str(path) in str(err.value)


def test_bad_environment_value_gives_config_error_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URBANPULSE_MQTT__PORT", "not-a-port")
    with pytest.raises(ConfigError, match=r"mqtt\.port"):
        load_settings()


def test_malformed_list_in_environment_gives_config_error_naming_the_section(monkeypatch: pytest.MonkeyPatch) -> None:
    # a common slip: a bare topic instead of a JSON list
    monkeypatch.setenv("URBANPULSE_MQTT__TOPICS", "city/#")
    with pytest.raises(ConfigError, match="mqtt"):
        load_settings()


def test_misspelt_field_is_rejected_by_name(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt:\n  hots: broker.example\n")
    with pytest.raises(ConfigError, match=r"mqtt\.hots"):
        load_settings(path)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt:\n  port: 0\ningest:\n  writers: 0\ndatabase:\n  storage_mode: mysql\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    for field in ("mqtt.port", "ingest.writers", "database.storage_mode"):
        assert field in str(err.value)


def test_missing_file_gives_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_settings(missing)


def test_unreadable_path_gives_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path)  # a directory


@pytest.mark.parametrize("text", ["- database\n- mqtt\n", "just a string\n", "42\n"])
def test_yaml_that_is_not_a_mapping_gives_config_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(write(tmp_path, text))


def test_invalid_yaml_gives_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "mqtt: [unclosed\n"))


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")) == Settings()


# -- the command line ---------------------------------------------------------------------


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("urbanpulse")
    return [str(script)] if script.exists() else [sys.executable, "-m", "urbanpulse.cli"]


def urbanpulse(*args: str, cwd: Path, env: dict[str, str] | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("URBANPULSE_")}
    clean.update(env or {})
    return subprocess.run([*_cli(), *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=timeout)


def test_top_level_help_lists_the_commands_and_configuration(tmp_path: Path) -> None:
    out = urbanpulse("--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for word in ("run", "migrate", "demo", "URBANPULSE_DATABASE__DSN"):
        assert word in out.stdout


@pytest.mark.parametrize("command,explains", [
    ("run", ["--config", "SIGTERM", "/health"]),
    ("migrate", ["--config", "storage mode"]),
    ("demo", ["--stations", "--hours", "Beijing"]),
])
def test_subcommand_help_exits_zero_and_explains(tmp_path: Path, command: str, explains: list[str]) -> None:
    out = urbanpulse(command, "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: urbanpulse {command}")
    for word in explains:
        assert word in out.stdout


def test_python_dash_m_entry_point_works(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "urbanpulse.cli", "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "migrate" in out.stdout


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    out = urbanpulse(cwd=tmp_path)
    assert out.returncode == 2
    assert "usage:" in out.stderr


def test_run_with_a_missing_config_file_exits_2_naming_the_file(tmp_path: Path) -> None:
    out = urbanpulse("run", "--config", "/nonexistent.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert "/nonexistent.yaml" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / ".urbanpulse").exists(), "nothing should start before the config is valid"


def test_run_with_an_invalid_field_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt:\n  port: 70000\n")
    out = urbanpulse("run", "--config", str(path), cwd=tmp_path)
    assert out.returncode == 2
    assert "mqtt.port" in out.stderr
    assert "Traceback" not in out.stderr


def test_run_with_a_malformed_environment_value_exits_2_without_a_traceback(tmp_path: Path) -> None:
    out = urbanpulse("run", cwd=tmp_path, env={"URBANPULSE_MQTT__TOPICS": "city/#"})
    assert out.returncode == 2, out.stderr[-2000:]
    assert "mqtt" in out.stderr
    assert "Traceback" not in out.stderr


# -- `urbanpulse migrate` against the real PostgreSQL -------------------------------------


def _in_thread(coro_fn, *args):  # noqa: ANN001, ANN202
    """Run an async helper on its own loop in a worker thread (whatever loop pytest holds)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro_fn(*args)).result()


async def _tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    finally:
        await conn.close()


@pytest.mark.integration
def test_migrate_with_dsn_from_environment_prints_storage_mode_and_is_repeatable(
        tmp_path: Path, fresh_db: str) -> None:
    env = {"URBANPULSE_DATABASE__DSN": fresh_db, "URBANPULSE_DATABASE__STORAGE_MODE": "postgres"}
    first = urbanpulse("migrate", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "storage mode: postgres" in first.stdout
    second = urbanpulse("migrate", cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    assert "storage mode: postgres" in second.stdout
    assert {"series", "sources", "quarantine", "readings", "schema_migrations"} <= _in_thread(_tables, fresh_db)
    assert not (tmp_path / ".urbanpulse").exists(), "a configured DSN must not start the embedded server"


async def _timescaledb_available(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"))
    finally:
        await conn.close()


@pytest.mark.integration
def test_migrate_in_auto_mode_prints_the_mode_the_server_supports(tmp_path: Path, fresh_db: str) -> None:
    out = urbanpulse("migrate", cwd=tmp_path, env={"URBANPULSE_DATABASE__DSN": fresh_db})
    assert out.returncode == 0, out.stderr
    expected = "timescaledb" if _in_thread(_timescaledb_available, fresh_db) else "postgres"
    assert out.stdout.strip().endswith(f"storage mode: {expected}")


@settings(max_examples=20, deadline=None)
@given(st.sampled_from([None, True, False]), st.sampled_from([None, True, False]))
def test_the_rollups_switch_is_a_storage_setting_and_reads_its_older_name(new: bool | None, old: bool | None) -> None:
    """database.rollups.enabled switches the rollups (issue 14 item 8); windows.rollups, its older
    name, still works alone; the two set differently is an error naming the one to keep."""
    from urbanpulse.config import load_settings
    from urbanpulse.errors import ConfigError
    from urbanpulse.query.run import RollupAvailability

    overrides: dict = {}
    if new is not None:
        overrides["database"] = {"rollups": {"enabled": new}}
    if old is not None:
        overrides["windows"] = {"rollups": old}
    if new is not None and old is not None and new != old:
        with pytest.raises(ConfigError, match="database.rollups.enabled"):
            load_settings(None, **overrides)
        return
    s = load_settings(None, **overrides)
    expected = next((v for v in (new, old) if v is not None), True)
    assert s.database.rollups.enabled is expected
    assert RollupAvailability.from_settings(s).enabled is expected
