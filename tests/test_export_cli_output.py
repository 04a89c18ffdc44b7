"""`urbanpulse export --output` says what is wrong with the file it is given, before the query runs.

A planner's `--output /reports/2026/city.csv` into a folder that did not exist ran the query and then
ended in a FileNotFoundError traceback; `--output city.xlsx` (or `.json`) silently wrote CSV into it.
Now a missing or unwritable folder and an extension that names no export format stop with exit 2 and
a message, before anything is asked of the database; no extension (or `-`) still means CSV.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from urbanpulse.errors import ConfigError
from urbanpulse.export.cli import FORMAT_OF_SUFFIX, check_output_writable, output_format

stems = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
suffixes = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=8)


def args(output: str, fmt: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(output=output, format=fmt)


@given(stem=stems, suffix=suffixes)
def test_the_format_follows_a_known_extension_and_refuses_any_other(stem: str, suffix: str) -> None:
    name = f"out/{stem}.{suffix}"
    if suffix.lower() in FORMAT_OF_SUFFIX:
        assert output_format(args(name)) == FORMAT_OF_SUFFIX[suffix.lower()]
    else:
        with pytest.raises(ConfigError, match=r"is not an export format.*--format"):
            output_format(args(name))


@given(stem=stems, suffix=suffixes, fmt=st.sampled_from(["csv", "ndjson", "parquet"]))
def test_format_wins_over_any_extension(stem: str, suffix: str, fmt: str) -> None:
    assert output_format(args(f"{stem}.{suffix}", fmt)) == fmt


@given(stem=stems)
def test_no_extension_or_standard_output_is_csv(stem: str) -> None:
    assert output_format(args(stem)) == "csv"
    assert output_format(args("-")) == "csv"


def test_a_missing_folder_is_refused_and_an_existing_one_accepted(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        check_output_writable(str(tmp_path / "nothere" / "x.csv"))
    check_output_writable(str(tmp_path / "x.csv"))
    check_output_writable("-")


@pytest.mark.parametrize("output,says", [("nothere/sub/x.csv", "does not exist"),
                                         ("city.xlsx", ".xlsx is not an export format")])
def test_export_command_refuses_a_bad_output_with_exit_2_and_no_traceback(
        migrated_db: str, tmp_path: Path, output: str, says: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("URBANPULSE_")}
    env["URBANPULSE_DATABASE__DSN"] = migrated_db
    out = subprocess.run([sys.executable, "-m", "urbanpulse.cli", "export", "--metric", "pm2_5", "--start",
                          "2026-01-01", "--output", output, "--no-progress"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert says in out.stderr
    assert not (tmp_path / output).exists()
