"""``urbanpulse export --path auto|raw|rollup``: where buckets are computed, as the history API's ``path=`` (csv46).

The API has said ``path=auto|raw|rollup`` since the rollups landed (docs/api.md, "Where the answer comes from");
``urbanpulse export`` took ``--path`` but hid it from ``--help``, so a planner checking a rollup against the readings
from the command line could not know it was there. Now ``--help`` explains it; the real CLI on real PostgreSQL (the
production writer, rollups merged as the service merges them) answers each path from where it says, with the same
numbers, and refuses ``--path rollup`` when the rollups cannot answer, as the API does.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import numpy as np
import pytest

import services
from readings import readings_columns
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore, prepare_connection

pytestmark = pytest.mark.integration

T0_US = 1_764_000_000_000_000  # 2025-11-24T16:00:00Z, a whole hour
SENSOR = "export-path-1"


@pytest.fixture(scope="module")
def path_db(pg_dsn: str):
    with services.migrated_database(pg_dsn) as dsn:
        async def write() -> None:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=prepare_connection)
            try:
                partitions = MonthlyPartitions()
                async with pool.acquire() as c:
                    await partitions.load(c)
                store = ReadingStore(pool, partitions, rollups=True)  # rollups merged with the readings
                ts = T0_US + np.arange(240) * 30_000_000  # two hours, every 30 s
                await store.write(readings_columns([SENSOR] * len(ts), "temperature", ts,
                                                   15.0 + np.sin(np.arange(len(ts)) / 7.0) * 5.0), [], "replay")
            finally:
                await pool.close()

        asyncio.run(write())
        yield dsn


def _cli(*args: str, dsn: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    if dsn is not None:
        env["URBANPULSE_DATABASE__DSN"] = dsn
    return subprocess.run([sys.executable, "-m", "urbanpulse.cli", "export", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def _export(dsn: str, out: Path, *extra: str, start: str = "2025-11-24T16:00:00Z") -> subprocess.CompletedProcess[str]:
    return _cli("--sensor", SENSOR, "--metric", "temperature", "--start", start, "--end", "2025-11-24T18:00:00Z",
                "--bucket", "15m", "--agg", "count,min,max,mean,sum", "--output", str(out), "--no-progress", *extra,
                dsn=dsn)


def _buckets(out: Path) -> list[list[float]]:
    rows = [line.split(",") for line in out.read_text().splitlines() if line and not line.startswith("#")]
    header = rows[0]
    return [[float(row[header.index(c)]) for c in ("count", "min", "max", "mean", "sum")] for row in rows[1:]]


def test_export_help_explains_path() -> None:
    res = _cli("--help")
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "--path {auto,raw,rollup}" in text, text
    for words in ("as the API's path=", "auto (default)", "raw always the readings", "rollup the rollups only"):
        assert words in text, (words, text)


def test_each_path_answers_from_where_it_says_with_the_same_numbers(path_db: str, tmp_path: Path) -> None:
    froms: dict[str, str] = {}
    numbers: dict[str, list[list[float]]] = {}
    for path in ("default", "auto", "raw", "rollup"):
        out = tmp_path / f"{path}.csv"
        res = _export(path_db, out, *(() if path == "default" else ("--path", path)))
        assert res.returncode == 0, (path, res.stderr)
        last = res.stderr.strip().splitlines()[-1]
        froms[path] = last.split("from ")[1].split(")")[0]
        numbers[path] = _buckets(out)
    assert froms["raw"] == "raw", froms
    assert froms["rollup"].startswith("rollup_"), froms
    assert froms["default"] == froms["auto"] == froms["rollup"], froms  # whole minutes, no percentile: the rollups
    assert len(numbers["raw"]) == 8 and sum(b[0] for b in numbers["raw"]) == 240, numbers["raw"]
    for path in ("default", "auto", "rollup"):
        assert np.allclose(numbers[path], numbers["raw"], rtol=1e-9, atol=1e-9), (path, numbers)


def test_path_rollup_is_refused_when_the_rollups_cannot_answer(path_db: str, tmp_path: Path) -> None:
    start = "2025-11-24T16:00:30Z"  # not a whole minute: only the readings can answer
    res = _export(path_db, tmp_path / "r.csv", "--path", "rollup", start=start)
    assert res.returncode == 2, res.stderr
    assert "path=auto" in res.stderr and "Traceback" not in res.stderr, res.stderr
    res = _export(path_db, tmp_path / "a.csv", start=start)
    assert res.returncode == 0, res.stderr
    assert "from raw" in res.stderr.strip().splitlines()[-1], res.stderr
