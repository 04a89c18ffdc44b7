"""``urbanpulse registry import`` / ``export``: the register as CSV or JSON files.

An import checks every row on its own (shape, catalogue units, duplicate ids, and whether the
database accepts the change) and reports every bad row by its line number; the good rows are
imported, or none of them with ``strict``. Importing the same file twice changes nothing.

CSV columns (header row; only ``id``, ``name``, ``lat``, ``lon`` are required)::

    id,name,description,type,lat,lon,elevation,area,tags,owner,install_date,status,data_class,licence,metrics,valid_from

``tags`` are separated by ``;``; ``metrics`` are ``metric:unit:interval_s`` entries separated by
``;`` (e.g. ``pm2_5:ug/m3:3600;pm10:ug/m3:3600``); ``valid_from`` (optional, RFC 3339) is when the
row's version takes effect. JSON is an array of objects with the same fields, ``tags`` a list and
``metrics`` an object (``{"pm2_5": {"unit": "ug/m3", "interval_s": 3600}}``); a JSON error names
the line where the object starts.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import asyncpg
from pydantic import ValidationError

from urbanpulse.errors import UrbanpulseError
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.registry.errors import RegistryError
from urbanpulse.registry.model import Sensor, SensorIn, catalogue_problems
from urbanpulse.registry.store import list_sensors, save_sensor

FileFormat = Literal["csv", "json"]
CSV_COLUMNS = ["id", "name", "description", "type", "lat", "lon", "elevation", "area", "tags", "owner",
               "install_date", "status", "data_class", "licence", "metrics", "valid_from"]
_OPTIONAL_BLANK = {"description": "", "type": ""}


class RegistryFileError(UrbanpulseError):
    """The file as a whole cannot be read (not CSV/JSON, no header, not an array)."""


@dataclass(frozen=True)
class RowError:
    """One rejected row: where it is in the file and what is wrong with it."""

    line: int
    sensor_id: str | None
    message: str

    def __str__(self) -> str:
        who = f" (sensor {self.sensor_id!r})" if self.sensor_id else ""
        return f"line {self.line}{who}: {self.message}"


@dataclass
class ParsedRow:
    """A row that passed every check that does not need the database."""

    line: int
    sensor: SensorIn
    valid_from: datetime | None


@dataclass
class ImportReport:
    """What an import did; ``errors`` lists every rejected row in file order."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    applied: bool = True  # False: --strict and errors, nothing imported

    @property
    def imported(self) -> int:
        return self.created + self.updated + self.unchanged


def detect_format(path: Path, given: str | None = None) -> FileFormat:
    """``csv`` or ``json``: as given, else from the file name's extension."""
    fmt = (given or path.suffix.lstrip(".")).lower()
    if fmt not in ("csv", "json"):
        raise RegistryFileError(f"cannot tell the format of {path.name}: name it .csv or .json, or pass --format")
    return fmt  # type: ignore[return-value]


def raw_rows(text: str, fmt: FileFormat) -> list[tuple[int, dict[str, Any] | None, str | None]]:
    """(line, fields, problem) per row of the file: fields None when the row is unreadable."""
    return _csv_rows(text) if fmt == "csv" else _json_rows(text)


def _csv_rows(text: str) -> list[tuple[int, dict[str, Any] | None, str | None]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise RegistryFileError("the CSV file is empty; it needs a header row naming the columns") from None
    except csv.Error as exc:
        raise RegistryFileError(f"line 1: the CSV header cannot be read ({exc})") from exc
    header = [h.strip().lstrip("\ufeff") for h in header]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise RegistryFileError(f"line 1: unknown column(s) {', '.join(map(repr, unknown))}; columns are "
                                f"{', '.join(CSV_COLUMNS)}")
    missing = [c for c in ("id", "name", "lat", "lon") if c not in header]
    if missing:
        raise RegistryFileError(f"line 1: the header lacks the required column(s) {', '.join(missing)}")
    out: list[tuple[int, dict[str, Any] | None, str | None]] = []
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            out.append((line, None, f"unreadable CSV ({exc})"))
            continue
        if not cells or all(not c.strip() for c in cells):
            continue  # blank line
        if len(cells) != len(header):
            out.append((line, None, f"{len(cells)} cells but the header has {len(header)} columns"))
            continue
        row: dict[str, Any] = {}
        problem = None
        for name, cell in zip(header, cells):
            cell = cell.strip()
            if name == "tags":
                row["tags"] = [t.strip() for t in cell.split(";") if t.strip()]
            elif name == "metrics":
                try:
                    row["metrics"] = _csv_metrics(cell)
                except ValueError as exc:
                    problem = str(exc)
            elif cell == "":
                if name in _OPTIONAL_BLANK:
                    row[name] = _OPTIONAL_BLANK[name]
                # other blanks (required ones too: reported as missing): the field's default
            else:
                row[name] = cell
        out.append((line, row if problem is None else None, problem))
    return out


def _csv_metrics(cell: str) -> dict[str, dict[str, Any]]:
    metrics: dict[str, dict[str, Any]] = {}
    for entry in (e.strip() for e in cell.split(";")):
        if not entry:
            continue
        metric, sep, rest = entry.partition(":")
        unit, sep2, interval = rest.rpartition(":")
        if not sep or not sep2 or not metric or not unit:
            raise ValueError(f"metrics entry {entry!r} must be metric:unit:interval_s, e.g. pm2_5:ug/m3:3600")
        if metric in metrics:
            raise ValueError(f"metric {metric!r} is listed twice")
        metrics[metric] = {"unit": unit, "interval_s": interval}
    return metrics


def _json_rows(text: str) -> list[tuple[int, dict[str, Any] | None, str | None]]:
    decoder = json.JSONDecoder()
    i = _skip_ws(text, 0)
    if i < len(text) and text[i] == "{":  # {"sensors": [...]} is accepted too
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RegistryFileError(f"line {exc.lineno}: not valid JSON ({exc.msg})") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("sensors"), list):
            raise RegistryFileError("a JSON registry file is an array of sensor objects (or {\"sensors\": [...]})")
        i = text.index("[", text.index('"sensors"'))
    elif i >= len(text) or text[i] != "[":
        raise RegistryFileError("a JSON registry file is an array of sensor objects (or {\"sensors\": [...]})")
    i += 1
    out: list[tuple[int, dict[str, Any] | None, str | None]] = []
    while True:
        i = _skip_ws(text, i)
        if i < len(text) and text[i] == "]":
            return out
        line = text.count("\n", 0, i) + 1
        try:
            value, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise RegistryFileError(f"line {exc.lineno}: not valid JSON ({exc.msg}); nothing was imported") from exc
        if isinstance(value, dict):
            out.append((line, value, None))
        else:
            out.append((line, None, f"expected a sensor object, got {type(value).__name__}"))
        i = _skip_ws(text, i)
        if i < len(text) and text[i] == ",":
            i += 1
        elif i < len(text) and text[i] == "]":
            return out
        else:
            line = text.count("\n", 0, i) + 1
            raise RegistryFileError(f"line {line}: expected ',' or ']' after a sensor object; nothing was imported")


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def check_rows(raw: Iterable[tuple[int, dict[str, Any] | None, str | None]],
               catalogue: MetricCatalogue) -> tuple[list[ParsedRow], list[RowError]]:
    """Validate every row (model, catalogue, duplicate ids): the good rows and every bad one."""
    good: list[ParsedRow] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for line, fields, problem in raw:
        sid = fields.get("id") if isinstance(fields, dict) and isinstance(fields.get("id"), str) else None
        if fields is None:
            errors.append(RowError(line, sid, problem or "unreadable row"))
            continue
        fields = dict(fields)
        valid_from_raw = fields.pop("valid_from", None)
        try:
            sensor = SensorIn.model_validate(fields)
        except ValidationError as exc:
            errors.append(RowError(line, sid, _pydantic_message(exc)))
            continue
        valid_from = None
        if valid_from_raw not in (None, ""):
            try:
                valid_from = datetime.fromisoformat(str(valid_from_raw).replace("Z", "+00:00"))
            except ValueError:
                valid_from = None
            if valid_from is None or valid_from.tzinfo is None:
                errors.append(RowError(line, sid, f"valid_from {valid_from_raw!r} must be RFC 3339 with an "
                                                  "offset, e.g. 2026-05-01T00:00:00Z"))
                continue
        problems = catalogue_problems(sensor, catalogue)
        if problems:
            errors.append(RowError(line, sid, "; ".join(problems)))
            continue
        if sensor.id in seen:
            errors.append(RowError(line, sid, f"sensor id also on line {seen[sensor.id]}; each sensor once per file"))
            continue
        seen[sensor.id] = line
        good.append(ParsedRow(line, sensor, valid_from))
    return good, errors


def _pydantic_message(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"]) or "row"
        parts.append(f"{where}: {'is required' if e['type'] == 'missing' else e['msg']}")
    return "; ".join(parts)


async def import_rows(conn: asyncpg.Connection, rows: list[ParsedRow], errors: list[RowError],
                      strict: bool = False) -> ImportReport:
    """Save the good rows, each in its own savepoint so one the database refuses (e.g. a
    ``valid_from`` before the current version) is reported and the rest still go in; with
    ``strict``, any error means nothing is imported."""
    report = ImportReport(errors=list(errors))
    if strict and errors:
        report.applied = False
        return report
    async with conn.transaction():
        for row in rows:
            try:
                async with conn.transaction():
                    _, outcome = await save_sensor(conn, row.sensor, row.valid_from)
            except (RegistryError, asyncpg.PostgresError) as exc:
                report.errors.append(RowError(row.line, row.sensor.id, str(exc)))
                continue
            setattr(report, outcome, getattr(report, outcome) + 1)
        report.errors.sort(key=lambda e: e.line)
        if strict and report.errors:
            report.applied = False
            report.created = report.updated = report.unchanged = 0
            raise _Rollback(report)
    return report


class _Rollback(Exception):
    def __init__(self, report: ImportReport) -> None:
        self.report = report


async def import_file(conn: asyncpg.Connection, path: Path, catalogue: MetricCatalogue, *,
                      fmt: str | None = None, strict: bool = False) -> ImportReport:
    """Read, check and import a registry file (see the module doc)."""
    kind = detect_format(path, fmt)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RegistryFileError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise RegistryFileError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    good, errors = check_rows(raw_rows(text, kind), catalogue)
    try:
        return await import_rows(conn, good, errors, strict)
    except _Rollback as rb:
        return rb.report


def export_text(sensors: list[Sensor], fmt: FileFormat) -> str:
    """The register as an import file (CSV or JSON); importing it back changes nothing."""
    if fmt == "json":
        items = [s.model_dump(mode="json", exclude={"valid_to"}) for s in sensors]
        return json.dumps(items, indent=2, ensure_ascii=False) + "\n"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for s in sensors:
        d = s.model_dump(mode="json")
        d["tags"] = ";".join(s.tags)
        d["metrics"] = ";".join(f"{m}:{info.unit}:{_number(info.interval_s)}" for m, info in s.metrics.items())
        w.writerow(["" if d.get(c) is None else d[c] for c in CSV_COLUMNS])
    return buf.getvalue()


def _number(x: float) -> str:
    return str(int(x)) if x.is_integer() else repr(x)


async def export_registry(conn: asyncpg.Connection, fmt: FileFormat) -> str:
    """Every current sensor as CSV or JSON text."""
    return export_text(await list_sensors(conn), fmt)
