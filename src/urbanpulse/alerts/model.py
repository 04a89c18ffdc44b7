"""The alert as held in memory, as written to the database and as the API shows it.

Times are int64 microseconds since the epoch (UTC) in memory, ``timestamptz`` in the database
and ISO 8601 strings in JSON. ``opened_at``, ``last_triggered_at``, trigger times and an
automatic ``resolved_at`` are *event* time (the readings' timestamps); ``acknowledged_at``,
a user's ``resolved_at`` and ``updated_at`` are wall-clock time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import orjson

from urbanpulse.alerts.settings import SEVERITY_RANK

STATES = ("open", "acknowledged", "resolved")
STATE_RANK = {s: i for i, s in enumerate(STATES)}
EVENT_KINDS = ("opened", "updated", "acknowledged", "resolved", "reopened", "flapping")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def us_to_dt(us: int | None) -> datetime | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us // 1_000_000, tz=timezone.utc).replace(microsecond=int(us % 1_000_000))


def dt_to_us(dt: datetime | None) -> int | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def iso(value: datetime | int | None) -> str | None:
    """ISO 8601 UTC with a ``Z``; ints are microseconds since the epoch."""
    if value is None:
        return None
    dt = us_to_dt(value) if isinstance(value, int) else value.astimezone(timezone.utc)
    return dt.isoformat().replace("+00:00", "Z")


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True, slots=True)
class Trigger:
    """One triggering reading (for the silence detector: value = seconds without a reading)."""

    ts_us: int
    value: float
    score: float

    def to_json(self) -> dict[str, Any]:
        return {"ts": iso(self.ts_us), "value": _finite(self.value), "score": _finite(self.score)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Trigger:
        ts = dt_to_us(datetime.fromisoformat(d["ts"].replace("Z", "+00:00")))
        value = d.get("value")
        score = d.get("score")
        return cls(int(ts or 0), float("nan") if value is None else float(value),
                   float("nan") if score is None else float(score))


@dataclass(slots=True)
class Alert:
    """Mutable in-memory state of one alert, owned by :class:`AlertManager`.

    ``normal_windows`` and ``reopen_times`` are bookkeeping that is not persisted: after a
    restart auto-resolve counts its windows again and flapping keeps only the stored flag.
    """

    series_id: int
    sensor_id: str
    metric: str
    detector: str
    severity: str
    opened_at_us: int
    last_triggered_at_us: int
    state: str = "open"
    flapping: bool = False
    reopen_count: int = 0
    trigger_count: int = 1
    max_score: float = 0.0
    triggers: list[Trigger] = field(default_factory=list)
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at_us: int | None = None
    resolved_by: str | None = None
    note: str | None = None
    normal_windows: int = 0
    reopen_times: list[int] = field(default_factory=list)

    @property
    def key(self) -> tuple[int, str, int]:
        """The natural key (series_id, detector, opened_at) the database upserts by."""
        return (self.series_id, self.detector, self.opened_at_us)

    def snapshot(self) -> AlertSnapshot:
        return AlertSnapshot(
            self.series_id, self.sensor_id, self.metric, self.detector, self.severity, self.state,
            self.flapping, self.reopen_count, self.opened_at_us, self.last_triggered_at_us,
            self.trigger_count, self.max_score, tuple(self.triggers), self.acknowledged_at,
            self.acknowledged_by, self.resolved_at_us, self.resolved_by, self.note)


@dataclass(frozen=True, slots=True)
class AlertSnapshot:
    """An immutable copy of an alert at one moment: what the store writes and events carry."""

    series_id: int
    sensor_id: str
    metric: str
    detector: str
    severity: str
    state: str
    flapping: bool
    reopen_count: int
    opened_at_us: int
    last_triggered_at_us: int
    trigger_count: int
    max_score: float
    triggers: tuple[Trigger, ...]
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at_us: int | None
    resolved_by: str | None
    note: str | None

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.series_id, self.detector, self.opened_at_us)

    def with_opened_at(self, opened_at_us: int) -> AlertSnapshot:
        return replace(self, opened_at_us=opened_at_us)

    def triggers_json(self) -> str:
        return orjson.dumps([t.to_json() for t in self.triggers]).decode()

    def to_api(self, alert_id: int, updated_at: datetime | None) -> dict[str, Any]:
        """The alert as the API returns it (used for events of intermediate states)."""
        return {
            "id": alert_id, "series_id": self.series_id, "sensor_id": self.sensor_id, "metric": self.metric,
            "detector": self.detector, "severity": self.severity, "state": self.state,
            "flapping": self.flapping, "reopen_count": self.reopen_count, "opened_at": iso(self.opened_at_us),
            "last_triggered_at": iso(self.last_triggered_at_us), "trigger_count": self.trigger_count,
            "max_score": _finite(self.max_score), "triggers": [t.to_json() for t in self.triggers],
            "acknowledged_at": iso(self.acknowledged_at), "acknowledged_by": self.acknowledged_by,
            "resolved_at": iso(self.resolved_at_us), "resolved_by": self.resolved_by,
            "updated_at": iso(updated_at), "note": self.note,
        }


def row_to_api(row: Any) -> dict[str, Any]:
    """An ``alerts`` row (asyncpg Record or mapping) as the API returns it."""
    triggers = row["triggers"]
    if isinstance(triggers, str):
        triggers = orjson.loads(triggers)
    return {
        "id": row["id"], "series_id": row["series_id"], "sensor_id": row["sensor_id"], "metric": row["metric"],
        "detector": row["detector"], "severity": row["severity"], "state": row["state"],
        "flapping": row["flapping"], "reopen_count": row["reopen_count"], "opened_at": iso(row["opened_at"]),
        "last_triggered_at": iso(row["last_triggered_at"]), "trigger_count": row["trigger_count"],
        "max_score": _finite(row["max_score"]), "triggers": triggers,
        "acknowledged_at": iso(row["acknowledged_at"]), "acknowledged_by": row["acknowledged_by"],
        "resolved_at": iso(row["resolved_at"]), "resolved_by": row["resolved_by"],
        "updated_at": iso(row["updated_at"]), "note": row["note"],
    }


def alert_from_row(row: Any) -> Alert:
    """Memory state rebuilt from a stored row (start-up, or a change made through the API)."""
    triggers = row["triggers"]
    if isinstance(triggers, str):
        triggers = orjson.loads(triggers)
    return Alert(
        series_id=row["series_id"], sensor_id=row["sensor_id"], metric=row["metric"], detector=row["detector"],
        severity=row["severity"], opened_at_us=dt_to_us(row["opened_at"]) or 0,
        last_triggered_at_us=dt_to_us(row["last_triggered_at"]) or 0, state=row["state"],
        flapping=row["flapping"], reopen_count=row["reopen_count"], trigger_count=row["trigger_count"],
        max_score=row["max_score"], triggers=[Trigger.from_json(t) for t in triggers],
        acknowledged_at=row["acknowledged_at"], acknowledged_by=row["acknowledged_by"],
        resolved_at_us=dt_to_us(row["resolved_at"]), resolved_by=row["resolved_by"], note=row["note"])


def max_severity(a: str, b: str) -> str:
    return a if SEVERITY_RANK.get(a, 0) >= SEVERITY_RANK.get(b, 0) else b


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event decided by the manager, not yet stored (it has no id)."""

    kind: str
    alert: AlertSnapshot


@dataclass(slots=True)
class AlertChanges:
    """What one ``AlertManager.process`` call changed: apply it in the batch's transaction.

    ``alerts`` holds the newest snapshot of each changed alert (one per natural key) and
    ``events`` the ordered events to append. Both are copies: the manager keeps moving on.
    """

    alerts: dict[tuple[int, str, int], AlertSnapshot] = field(default_factory=dict)
    events: list[PendingEvent] = field(default_factory=list)
    muted: int = 0        # detections dropped by a maintenance window
    unknown_slots: int = 0  # closed windows / silences for slots never assigned

    def __bool__(self) -> bool:
        return bool(self.alerts or self.events)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A stored alert event: what SSE streams (``id`` is the SSE event id) and webhooks POST."""

    id: int
    alert_id: int
    at: datetime
    kind: str
    state: str
    payload: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "alert_id": self.alert_id, "at": iso(self.at), "kind": self.kind,
                "state": self.state, "alert": self.payload}

    def sse(self) -> bytes:
        """The event as a Server-Sent Events frame."""
        return b"id: %d\nevent: %s\ndata: %s\n\n" % (self.id, self.kind.encode(), orjson.dumps(self.to_json()))

    @classmethod
    def from_row(cls, row: Any) -> AlertEvent:
        payload = row["payload"]
        if isinstance(payload, str):
            payload = orjson.loads(payload)
        return cls(row["id"], row["alert_id"], row["at"], row["kind"], row["state"], payload)
