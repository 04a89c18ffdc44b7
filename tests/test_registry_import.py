"""``urbanpulse registry import``: every bad row is reported by its line number and the rest are
imported (nothing with --strict), for generated files mixing valid and invalid rows, in CSV
(with quoted multi-line cells) and JSON; export then import changes nothing."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import services
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.registry.io import CSV_COLUMNS, check_rows, export_registry, import_file, raw_rows
from urbanpulse.registry.store import list_sensors

CATALOGUE = MetricCatalogue.load()
METRIC_UNITS = [("pm2_5", "ug/m3"), ("pm10", "µg/m3"), ("temperature", "Cel"), ("humidity", "%"),
                ("noise_db", "dB"), ("traffic_count", "{count}")]
MUTATIONS = ["lat", "lon", "name", "status", "unit", "metric", "date", "interval", "duplicate", "cells",
             "valid_from", "data_class"]
words = st.text(st.characters(categories=["L", "N"], include_characters="-_."), min_size=1,
                max_size=12)


@st.composite
def registry_rows(draw: st.DrawFn) -> list[tuple[bool, dict[str, object]]]:
    """Rows in file order, each (valid, fields); invalid ones broken in exactly one way."""
    n = draw(st.integers(1, 12))
    rows: list[tuple[bool, dict[str, object]]] = []
    for k in range(n):
        metrics = draw(st.lists(st.sampled_from(METRIC_UNITS), max_size=3, unique_by=lambda mu: mu[0]))
        row: dict[str, object] = {
            "id": f"s{k}-{draw(words)}", "name": draw(words),
            "description": draw(st.sampled_from(["", "on a lamp post, north side", 'says "hi",\nsecond line'])),
            "lat": draw(st.floats(-90, 90)), "lon": draw(st.floats(-180, 180)),
            "area": draw(st.sampled_from(["camden", "brent", None])), "tags": draw(st.lists(words, max_size=3)),
            "install_date": draw(st.sampled_from([None, "2024-02-29"])),
            "status": draw(st.sampled_from(["active", "maintenance", "retired"])),
            "data_class": draw(st.sampled_from(["open", "restricted", "personal"])),
            "metrics": {m: {"unit": u, "interval_s": draw(st.sampled_from([1, 60, 3600, 0.5]))} for m, u in metrics},
        }
        valid = draw(st.booleans())
        if not valid:
            earlier_valid = [r["id"] for ok, r in rows if ok]
            how = draw(st.sampled_from(MUTATIONS))
            if how == "duplicate" and not earlier_valid:
                how = "lat"
            if how == "lat":
                row["lat"] = draw(st.sampled_from([90.5, -1000.0]))
            elif how == "lon":
                row["lon"] = 180.01
            elif how == "name":
                row["name"] = None
            elif how == "status":
                row["status"] = "broken"
            elif how == "unit":
                row["metrics"] = {"temperature": {"unit": "K", "interval_s": 60}}
            elif how == "metric":
                row["metrics"] = {"smell": {"unit": "1", "interval_s": 60}}
            elif how == "date":
                row["install_date"] = "2026-13-01"
            elif how == "interval":
                row["metrics"] = {"pm2_5": {"unit": "ug/m3", "interval_s": -5}}
            elif how == "duplicate":
                row["id"] = draw(st.sampled_from(earlier_valid))
            elif how == "cells":
                row["_cells"] = True
            elif how == "valid_from":
                row["valid_from"] = "yesterday"
            elif how == "data_class":
                row["data_class"] = "secret"
        rows.append((valid, row))
    return rows


def render_csv(rows: list[tuple[bool, dict[str, object]]]) -> tuple[str, list[int]]:
    """The CSV text and the line each record starts on."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    lines = []
    for _, r in rows:
        lines.append(buf.getvalue().count("\n") + 1)
        cells = []
        for c in CSV_COLUMNS:
            v = r.get(c)
            if c == "tags":
                v = ";".join(v)  # type: ignore[arg-type]
            elif c == "metrics":
                v = ";".join(f"{m}:{i['unit']}:{i['interval_s']}" for m, i in v.items())  # type: ignore[union-attr]
            cells.append("" if v is None else str(v))
        if r.get("_cells"):
            cells = cells[:-1]
        w.writerow(cells)
    return buf.getvalue(), lines


def render_json(rows: list[tuple[bool, dict[str, object]]]) -> tuple[str, list[int]]:
    parts, lines, line = [], [], 2
    for _, r in rows:
        obj = {k: v for k, v in r.items() if v is not None and not k.startswith("_")}
        if r.get("name") is None:
            obj.pop("name", None)
        if r.get("_cells"):
            obj["unexpected"] = 1  # the JSON analogue of a malformed row: an unknown field
        text = json.dumps(obj, indent=2, ensure_ascii=False)
        lines.append(line)
        line += text.count("\n") + 1
        parts.append(text)
    return "[\n" + ",\n".join(parts) + "\n]\n", lines


def expected(rows: list[tuple[bool, dict[str, object]]], lines: list[int]) -> tuple[list[int], list[str]]:
    return [ln for (ok, _), ln in zip(rows, lines) if not ok], [str(r["id"]) for ok, r in rows if ok]


@settings(max_examples=150, deadline=None)
@given(rows=registry_rows(), fmt=st.sampled_from(["csv", "json"]))
def test_every_bad_row_is_reported_by_its_line(rows, fmt):
    text, lines = (render_csv if fmt == "csv" else render_json)(rows)
    good, errors = check_rows(raw_rows(text, fmt), CATALOGUE)
    bad_lines, good_ids = expected(rows, lines)
    assert [e.line for e in errors] == bad_lines, [str(e) for e in errors]
    assert [g.sensor.id for g in good] == good_ids
    assert all(e.message for e in errors)


@pytest.fixture(scope="module")
def import_db(pg_dsn: str):
    with services.migrated_database(pg_dsn) as dsn:
        yield dsn


@pytest.mark.integration
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=registry_rows(), fmt=st.sampled_from(["csv", "json"]), strict=st.booleans())
def test_import_stores_the_good_rows_or_nothing_when_strict(import_db, tmp_path, rows, fmt, strict):
    text, lines = (render_csv if fmt == "csv" else render_json)(rows)
    path = tmp_path / f"sensors.{fmt}"
    path.write_text(text, encoding="utf-8")
    bad_lines, good_ids = expected(rows, lines)

    async def run():
        conn = await asyncpg.connect(import_db)
        try:
            await conn.execute("TRUNCATE sensors_history")
            report = await import_file(conn, path, CATALOGUE, strict=strict)
            stored = sorted(s.id for s in await list_sensors(conn))
            exported = await export_registry(conn, fmt)
            # export -> import round trip: nothing changes
            path.write_text(exported, encoding="utf-8")
            again = await import_file(conn, path, CATALOGUE)
            return report, stored, again
        finally:
            await conn.close()

    report, stored, again = asyncio.run(run())
    assert [e.line for e in report.errors] == bad_lines
    if strict and bad_lines:
        assert not report.applied and stored == []
    else:
        assert stored == sorted(good_ids) and report.created == len(good_ids)
    assert again.errors == [] and again.unchanged == len(stored) and again.created == again.updated == 0


@pytest.mark.integration
def test_cli_import_reports_lines_and_exit_status(fresh_db, tmp_path):
    path = tmp_path / "sensors.csv"
    path.write_text("id,name,lat,lon,metrics\n"
                    "a,Station A,51.5,-0.1,pm2_5:ug/m3:3600\n"
                    "b,Station B,95,-0.1,\n"
                    "c,Station C,51.6,-0.2,temperature:K:60\n"
                    "d,Station D,51.7,-0.3,\n", encoding="utf-8")
    env = {**os.environ, "URBANPULSE_DATABASE__DSN": fresh_db, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "urbanpulse.cli", "registry", "import", str(path)]
    strict = subprocess.run([*cmd, "--strict"], env=env, capture_output=True, text=True, timeout=120)
    assert strict.returncode == 1 and "nothing imported" in strict.stderr
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert [ln.split(": ")[1] for ln in out.stderr.splitlines()] == ["line 3 (sensor 'b')", "line 4 (sensor 'c')"]
    assert "lat" in out.stderr and "unit 'K'" in out.stderr
    assert "2 created" in out.stdout
    exported = subprocess.run([sys.executable, "-m", "urbanpulse.cli", "registry", "export", "--format", "json"],
                              env=env, capture_output=True, text=True, timeout=120)
    assert exported.returncode == 0
    assert [s["id"] for s in json.loads(exported.stdout)] == ["a", "d"]
