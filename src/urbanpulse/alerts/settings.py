"""Alert configuration (the ``alerts:`` section): severities, auto-resolve, flap suppression,
maintenance windows, webhooks and the SSE stream.

Every field has a default that runs; an empty section gives alerts on the API and SSE with no
webhooks and no maintenance windows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Severity = Literal["info", "warning", "critical"]
EventKind = Literal["opened", "updated", "acknowledged", "resolved", "reopened", "flapping"]

SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}

DEFAULT_SEVERITIES: dict[str, Severity] = {
    "threshold": "critical", "robust_z": "warning", "ewma": "warning",
    "spike": "warning", "flatline": "warning", "silence": "critical",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookSettings(_Section):
    """One HTTP endpoint that receives alert events as JSON POSTs."""

    url: str = Field(description="http(s) URL that receives a POST per alert event")
    severities: list[Severity] = Field(default_factory=lambda: ["warning", "critical"],
                                       description="only alerts of these severities are sent")
    events: list[EventKind] = Field(
        default_factory=lambda: ["opened", "reopened", "flapping", "acknowledged", "resolved"],
        description="which event kinds are sent; 'updated' (every further anomalous reading) is off by default")
    headers: dict[str, str] = Field(default_factory=dict, description="extra headers, e.g. Authorization")
    timeout_s: float = Field(5.0, gt=0, description="per attempt")
    max_attempts: int = Field(5, ge=1, description="attempts per event before it is given up (and counted)")
    backoff_initial_s: float = Field(0.5, gt=0, description="wait after the first failure; doubles each time")
    backoff_max_s: float = Field(30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https:// (got {v!r})")
        return v


class MaintenanceWindowSettings(_Section):
    """A planned period in which a sensor's detections raise no alert (counted as muted)."""

    sensor: str = Field(description="sensor id or fnmatch pattern, e.g. 'station-12' or 'dongsi-*'")
    starts_at: datetime = Field(description="event time, ISO 8601 with a timezone")
    ends_at: datetime
    reason: str = ""

    @model_validator(mode="after")
    def _order(self) -> MaintenanceWindowSettings:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("maintenance starts_at/ends_at need a timezone, e.g. 2024-05-01T08:00:00Z")
        if self.ends_at <= self.starts_at:
            raise ValueError("maintenance ends_at must be after starts_at")
        return self


class AlertSettings(_Section):
    """Severities, auto-resolve, flap suppression, maintenance windows, webhooks."""

    enabled: bool = True
    resolve_after_windows: int = Field(
        3, ge=1, description="auto-resolve after this many closed windows of the series without a trigger")
    flap_window: timedelta = Field(
        timedelta(hours=1),
        description="a resolved alert re-firing within this (event) time of its last trigger is re-opened, "
                    "not duplicated; a flapping alert is re-notified only after staying resolved this long")
    flap_threshold: int = Field(3, ge=1, description="re-opens within flap_window that mark an alert flapping")
    silence_group_min: int = Field(
        3, ge=0, description="a whole source going quiet is ONE incident: when at least this many sensors (not series: "
        "one station's metrics count once) of one source are reported silent in one batch (or its incident is already open), their silence opens or updates "
        "a single alert for the source (sensor_id 'source:<name>', metric '*') instead of one per series; "
        "0 = one silence alert per series")
    severity: dict[str, Severity] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITIES),
        description="severity per detector when the detection carries none")
    default_severity: Severity = Field("warning", description="for detectors missing from `severity`")
    max_triggers: int = Field(20, ge=1, le=1000, description="triggering readings kept per alert (the latest)")
    maintenance: list[MaintenanceWindowSettings] = Field(
        default_factory=list, description="static maintenance windows; more can be added with POST /maintenance")
    maintenance_refresh_s: float = Field(30.0, gt=0,
                                         description="how often windows added by other workers are reloaded")
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    webhook_queue_size: int = Field(10_000, ge=1, description="per webhook; the oldest events are dropped beyond")
    sse_queue_size: int = Field(1_000, ge=1, description="events buffered per SSE client before it is dropped")
    sse_keepalive_s: float = Field(15.0, gt=0, description="comment line sent on an idle SSE stream")
    sse_send_timeout_s: float = Field(30.0, gt=0, description="an SSE client that takes no data for this long "
                                                              "(its socket buffer stays full) is disconnected")
    sse_poll_s: float = Field(1.0, gt=0, description="how often an SSE stream checks the database for "
                                                     "events committed by other workers")

    def severity_for(self, detector: str) -> str:
        return self.severity.get(detector, self.default_severity)
