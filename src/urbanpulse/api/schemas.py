"""Request and response bodies of the alert, maintenance and key routes, with the examples the
OpenAPI document (and so /docs) shows. Response models document what the routes already return;
request models reject unknown fields, so a typo is a 422 naming it rather than silently ignored."""

from __future__ import annotations

from typing import Literal

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from urbanpulse.utc import to_utc
from urbanpulse.auth.roles import Role


#: PostgreSQL text cannot hold NUL; saying so in the schema keeps it a 422, not a database error
_NO_NUL = r"^[^\x00]*$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Trigger(BaseModel):
    """One reading that triggered the alert."""

    ts: str = Field(description="event time, ISO 8601 UTC")
    value: float | None = Field(description="null when not finite")
    score: float | None


_ALERT_EXAMPLE = {
    "id": 42, "series_id": 7, "sensor_id": "dongsi-03", "metric": "pm2_5", "detector": "spike",
    "severity": "warning", "state": "open", "flapping": False, "reopen_count": 0,
    "opened_at": "2026-11-26T08:00:00Z", "last_triggered_at": "2026-11-26T08:05:00Z", "trigger_count": 2,
    "max_score": 0.97, "triggers": [{"ts": "2026-11-26T08:00:00Z", "value": 412.0, "score": 0.97}],
    "acknowledged_at": None, "acknowledged_by": None, "resolved_at": None, "resolved_by": None,
    "updated_at": "2026-11-26T08:05:01Z", "note": None}


class Alert(BaseModel):
    """An alert with its latest triggering readings."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ALERT_EXAMPLE]})

    id: int
    series_id: int
    sensor_id: str
    metric: str
    detector: str
    severity: Literal["info", "warning", "critical"]
    state: Literal["open", "acknowledged", "resolved"]
    flapping: bool
    reopen_count: int
    opened_at: str | None
    last_triggered_at: str | None
    trigger_count: int
    max_score: float | None
    triggers: list[Trigger]
    acknowledged_at: str | None
    acknowledged_by: str | None
    resolved_at: str | None
    resolved_by: str | None
    updated_at: str | None
    note: str | None


class AlertPage(BaseModel):
    """One page of alerts, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [_ALERT_EXAMPLE], "next_cursor": "41"}]})

    items: list[Alert]
    next_cursor: str | None = Field(description="pass as cursor= for the next page; null on the last page")


class AlertNote(_Body):
    """Optional body of ack and resolve: who did it and why (``by`` defaults to the key's name)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"by": "ana", "note": "driving there"}]})

    by: str | None = Field(None, max_length=200, pattern=_NO_NUL, description="who; default: the name of the API key used")
    note: str | None = Field(None, max_length=2000, pattern=_NO_NUL, description="why; kept on the alert")


class MaintenanceWindowIn(_Body):
    """A planned window in which detections of matching sensors raise no alert."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"sensor": "dongsi-*", "starts_at": "2026-12-01T08:00:00Z", "ends_at": "2026-12-01T12:00:00Z",
         "reason": "filter change"}]})

    sensor: str = Field(min_length=1, max_length=200, pattern=_NO_NUL, description="sensor id or fnmatch pattern (* and ?)")
    starts_at: AwareDatetime = Field(description="event time, ISO 8601 with a timezone")
    ends_at: AwareDatetime = Field(description="after starts_at")
    reason: str = Field("", max_length=2000, pattern=_NO_NUL)

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def _iso_string(cls, v: object) -> object:
        if not isinstance(v, str):
            raise ValueError("must be an ISO 8601 time with a timezone, as a string, e.g. 2026-12-01T08:00:00Z")
        return v

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _in_utc(cls, v: datetime) -> datetime:
        return to_utc(v)


_WINDOW_EXAMPLE = {"id": 3, "sensor": "dongsi-*", "starts_at": "2026-12-01T08:00:00Z",
                   "ends_at": "2026-12-01T12:00:00Z", "reason": "filter change", "source": "api"}


class MaintenanceWindow(BaseModel):
    """A maintenance window; those from the config file have ``source: config`` and no id."""

    model_config = ConfigDict(json_schema_extra={"examples": [_WINDOW_EXAMPLE]})

    id: int | None
    sensor: str
    starts_at: str
    ends_at: str
    reason: str
    source: Literal["config", "api"]


class MaintenanceList(BaseModel):
    """Every maintenance window, from the config file and the API."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [_WINDOW_EXAMPLE]}]})

    items: list[MaintenanceWindow]


class KeyIn(_Body):
    """A new API key: who holds it and what it may do."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "grafana", "role": "viewer"}]})

    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00]*\S[^\x00]*$",
                      description="who or what holds the key")
    role: Role = Field(description="viewer (read), operator (alerts, maintenance), admin (registry, keys), "
                                   "ingest (HTTP ingest)")


_KEY_EXAMPLE = {"id": "3f9a1c07b2", "name": "grafana", "role": "viewer", "created_at": "2026-11-30T13:00:00+00:00",
                "created_by": "ops", "active": True, "revoked_at": None, "revoked_by": None}


class KeyInfo(BaseModel):
    """A stored key, never its secret."""

    model_config = ConfigDict(json_schema_extra={"examples": [_KEY_EXAMPLE]})

    id: str = Field(description="the public part of the key (upk_<id>_...)")
    name: str
    role: Role
    created_at: str
    created_by: str | None
    active: bool
    revoked_at: str | None
    revoked_by: str | None


class KeyList(BaseModel):
    """Every key, oldest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [_KEY_EXAMPLE]}]})

    items: list[KeyInfo]


class CreatedKeyOut(BaseModel):
    """A new key; ``key`` is shown this once and cannot be recovered."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"key": "upk_3f9a1c07b2_" + "x" * 43, "info": _KEY_EXAMPLE}]})

    key: str = Field(description="send as 'Authorization: Bearer <key>'; store it now, it is not shown again")
    info: KeyInfo
