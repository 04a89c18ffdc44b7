"""What a registered sensor is: pydantic models for API bodies, import rows and answers.

Shape checks live here (types, ranges, allowed words); checks that need the metric catalogue
(is the metric known, is the unit one it accepts) live in :func:`catalogue_problems`, so a model
can be validated without loading configuration.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from urbanpulse.quality.catalogue import MetricCatalogue


class Status(str, enum.Enum):
    """Whether a sensor is expected to report."""

    ACTIVE = "active"
    MAINTENANCE = "maintenance"
    RETIRED = "retired"


class DataClass(str, enum.Enum):
    """Who may read a sensor's data: ``open`` to anyone (the open-data scope), ``restricted`` and
    ``personal`` only with a key."""

    OPEN = "open"
    RESTRICTED = "restricted"
    PERSONAL = "personal"


#: UCUM codes accepted for the catalogue's canonical units (besides the catalogue's own spellings)
UCUM_EQUIVALENTS: dict[str, frozenset[str]] = {
    "degC": frozenset({"Cel"}),
    "%": frozenset({"%"}),
    "hPa": frozenset({"hPa"}),
    "mm": frozenset({"mm"}),
    "m/s": frozenset({"m/s"}),
    "ug/m3": frozenset({"ug/m3"}),
    "dB": frozenset({"dB"}),
    "count": frozenset({"{count}", "1"}),
    "km/h": frozenset({"km/h"}),
}

#: what the API shows as the example of a sensor (and /docs fills in)
SENSOR_EXAMPLE: dict[str, Any] = {
    "name": "Camden Road AQ", "description": "on the lamp post by the school gate", "type": "air-quality",
    "lat": 51.5413, "lon": -0.1395, "elevation": 28.0, "area": "camden", "tags": ["air", "school"],
    "owner": "LB Camden", "install_date": "2024-03-01", "status": "active", "data_class": "open",
    "licence": "OGL-UK-3.0",
    "metrics": {"pm2_5": {"unit": "ug/m3", "interval_s": 60}, "no2": {"unit": "ug/m3", "interval_s": 60}}}


def _no_control_characters(value: Any, where: str = "") -> None:
    """PostgreSQL text cannot hold NUL, and ids/tags/units must read back as typed."""
    if isinstance(value, str):
        if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            raise ValueError(f"{where or 'text'} holds a NUL or a lone surrogate; send plain text")
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_control_characters(k, where)
            _no_control_characters(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, (list, tuple)):
        for v in value:
            _no_control_characters(v, where)


def _iso_date(value: Any) -> Any:
    """An install date is ``YYYY-MM-DD`` text (or a date): a number would silently be epoch seconds."""
    if isinstance(value, (int, float)):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


class _Checked(BaseModel):
    model_config = ConfigDict(regex_engine="python-re")  # patterns mean what Python's re says, as in the tests

    @model_validator(mode="before")
    @classmethod
    def _plain_text(cls, data: Any) -> Any:
        _no_control_characters(data)
        return data


#: no control characters (C0, DEL, C1) and no surrounding whitespace: what an id or tag can be,
#: written as a pattern so the OpenAPI document says exactly what the API accepts
ID_PATTERN = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
#: the same without ';' (the CSV tag separator)
TAG_PATTERN = r"^[^;\s\x00-\x1f\x7f-\x9f](?:[^;\x00-\x1f\x7f-\x9f]*[^;\s\x00-\x1f\x7f-\x9f])?$"

SensorId = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN,
                                description="stable id readings carry as sensor_id")]
Tag = Annotated[str, Field(min_length=1, max_length=100, pattern=TAG_PATTERN)]
#: PostgreSQL text cannot hold NUL; saying so in the schema keeps it a 422 the document predicts
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, Field(max_length=2000, pattern=NO_NUL)]
ShortText = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
Word = Annotated[str, Field(max_length=200, pattern=NO_NUL)]
NonEmptyWord = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
MetricName = Annotated[str, Field(min_length=1, max_length=128, pattern=NO_NUL)]


class MetricInfo(_Checked):
    """One metric a sensor reports: its unit and how often a reading is expected."""

    model_config = ConfigDict(extra="forbid")

    unit: str = Field(min_length=1, max_length=64, pattern=NO_NUL,
                      description="UCUM code or the catalogue's unit, e.g. ug/m3")
    interval_s: float = Field(gt=0, le=366 * 86400, allow_inf_nan=False,
                              description="expected seconds between readings (feeds silence and completeness)")


class SensorFields(_Checked):
    """Everything about a sensor except its id (the body of ``PUT /sensors/{id}``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SENSOR_EXAMPLE]})

    name: ShortText
    description: Text = ""
    type: Word = ""
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    elevation: float | None = Field(None, ge=-500, le=10000, allow_inf_nan=False, description="metres")
    area: NonEmptyWord | None = Field(None, description="district or area")
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    owner: Word | None = None
    install_date: IsoDate | None = None
    status: Status = Status.ACTIVE
    data_class: DataClass = DataClass.OPEN
    licence: Word | None = Field(None, description="e.g. CC-BY-4.0")
    metrics: dict[MetricName, MetricInfo] = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _sorted_tags(cls, tags: list[str]) -> list[str]:
        return sorted(set(tags))


class SensorIn(SensorFields):
    """A sensor with its id: one row of an import file, or what the registry stores."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"id": "camden-aq-1", **SENSOR_EXAMPLE}]})

    id: SensorId


class SensorPatch(_Checked):
    """``PATCH /sensors/{id}``: only the fields given change (``metrics`` entries are merged;
    ``null`` for a metric removes it). ``null`` clears an optional field (elevation, area, owner,
    install_date, licence) and leaves a required one (name, lat, lon, status, ...) as it is."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"lat": 51.55, "lon": -0.2, "area": "brent", "metrics": {"no2": None}}]})

    name: ShortText | None = None
    description: Text | None = None
    type: Word | None = None
    lat: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False)
    elevation: float | None = Field(None, ge=-500, le=10000, allow_inf_nan=False)
    area: NonEmptyWord | None = None
    tags: list[Tag] | None = None
    owner: Word | None = None
    install_date: IsoDate | None = None
    status: Status | None = None
    data_class: DataClass | None = None
    licence: Word | None = None
    metrics: dict[MetricName, MetricInfo | None] | None = None

    def apply(self, current: SensorIn) -> SensorIn:
        """``current`` with this patch applied, validated again as a whole."""
        data = current.model_dump(include=set(SensorIn.model_fields))
        for key, value in self.model_dump(exclude_unset=True).items():
            if value is None and key in _REQUIRED_OR_DEFAULTED:
                continue
            if key == "metrics":
                merged = dict(data["metrics"])
                for metric, info in (value or {}).items():
                    if info is None:
                        merged.pop(metric, None)
                    else:
                        merged[metric] = info
                data["metrics"] = merged
            else:
                data[key] = value
        return SensorIn.model_validate(data)


_REQUIRED_OR_DEFAULTED = frozenset({"name", "description", "type", "lat", "lon", "tags", "status", "data_class",
                                    "metrics"})


class Sensor(SensorIn):
    """A registered sensor as the API answers it: the current version and since when it holds."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"id": "camden-aq-1", **SENSOR_EXAMPLE, "valid_from": "2026-05-01T00:00:00Z"}]})

    valid_from: datetime = Field(description="since when this version of the sensor holds")
    valid_to: datetime | None = Field(None, description="when it stopped holding (history only)")


def catalogue_problems(sensor: SensorFields, catalogue: MetricCatalogue) -> list[str]:
    """What is wrong with ``sensor``'s metrics against the catalogue (empty when nothing)."""
    problems = []
    for metric, info in sensor.metrics.items():
        i = catalogue.index.get(metric)
        if i is None:
            problems.append(f"metric {metric!r} is not in the catalogue (config/metrics.yaml); readings of it "
                            f"would be quarantined as unknown_metric: add it under validation.metrics")
            continue
        spec = catalogue.specs[i]
        allowed = catalogue.units[i] | UCUM_EQUIVALENTS.get(spec.unit, frozenset())
        if info.unit not in allowed:
            problems.append(f"unit {info.unit!r} for {metric}: expected {spec.unit!r} (or one of "
                            f"{sorted(allowed - {spec.unit})})")
    return problems


def row_of(record: Any) -> dict[str, Any]:
    """A ``sensors``/``sensors_history`` database row as the model's field names."""
    d = dict(record)
    d["id"] = d.pop("sensor_id")
    metrics = d.get("metrics")
    if isinstance(metrics, str):
        d["metrics"] = orjson.loads(metrics)
    d["tags"] = list(d.get("tags") or [])
    d.pop("changed_at", None)
    return d
