"""`urbanpulse subject export --output` into a folder that does not exist is refused before the
export runs, so `privacy_audit` never records an export that delivered nothing.

newcomer43 noticed (and left): the export appended its audit row (`subject_export`, rows per table)
and only then failed to write the file, so the accountability record said the subject's data went
out when nothing did. Hypothesis over missing paths; the real command on PostgreSQL, the audit
table counted before and after.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import services
from urbanpulse.errors import ConfigError
from urbanpulse.privacy.cli import check_output_folder

names = st.text(st.characters(whitelist_categories=("Ll", "Nd"), whitelist_characters="-_."), min_size=1,
                max_size=12).filter(lambda n: n not in {".", ".."})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(missing=st.lists(names, min_size=1, max_size=3), file=names)
def test_a_missing_folder_is_refused_naming_it_and_an_existing_one_is_taken(tmp_path: Path, missing: list[str],
                                                                           file: str) -> None:
    folder = tmp_path.joinpath("absent", *missing)
    with pytest.raises(ConfigError, match="nothing was exported or audited") as caught:
        check_output_folder(folder / file)
    assert str(folder) in str(caught.value)
    check_output_folder(tmp_path / file)  # an existing folder: no error


def _audit_rows(dsn: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval("SELECT count(*) FROM privacy_audit WHERE action = 'subject_export'")
        finally:
            await conn.close()
    return services.run_sync(count())


def _export(dsn: str, cwd: Path, output: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("URBANPULSE_")}
    env["URBANPULSE_DATABASE__DSN"] = dsn
    return subprocess.run([sys.executable, "-m", "urbanpulse.cli", "subject", "export", "--device", "phone-1",
                           "--output", str(output)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_command_audits_only_an_export_it_delivered(migrated_db: str, tmp_path: Path) -> None:
    before = _audit_rows(migrated_db)
    out = _export(migrated_db, tmp_path, tmp_path / "nothere" / "anna.json")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert _audit_rows(migrated_db) == before  # on main: before + 1, an export audited that delivered nothing
    assert "nothing was exported or audited" in out.stderr
    out = _export(migrated_db, tmp_path, tmp_path / "anna.json")
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "anna.json").is_file() and _audit_rows(migrated_db) == before + 1
