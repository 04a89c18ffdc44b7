"""Filters and keyset pagination for ``GET /alerts``, parsed from query strings with messages a
user can act on.

Pages are newest first (id descending); the cursor is an opaque token holding the last id of
the previous page, so paging is stable while new alerts keep arriving.
``since`` and ``until`` filter independently (last trigger at or after ``since``, opened before
``until``), so any pair of times is a valid query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from urbanpulse.alerts.errors import InvalidQuery
from urbanpulse.alerts.model import STATES
from urbanpulse.alerts.settings import SEVERITY_RANK
from urbanpulse.utc import to_utc

DETECTORS = ("threshold", "robust_z", "ewma", "spike", "flatline", "silence")
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def encode_cursor(last_id: int) -> str:
    """The cursor of the page after the one ending at ``last_id`` (opaque to clients)."""
    return str(last_id)


def decode_cursor(token: str) -> int:
    if not (token.isascii() and token.isdigit() and len(token) <= 18):
        raise InvalidQuery(f"cursor {token!r} is not valid: pass the next_cursor value of the previous page "
                           f"unchanged, or omit cursor to start from the newest alert")
    return int(token)


def parse_time(name: str, value: str) -> datetime:
    """ISO 8601; a time without a timezone is taken as UTC. A time whose UTC equivalent falls
    outside years 1..9999 (e.g. 0001-01-01T00:00+05:00) is clamped to the nearest end."""
    v = value.strip()
    if "T" in v and v.count(" ") == 1:
        v = v.replace(" ", "+")  # an unescaped "+02:00" arrives as " 02:00" in a query string
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise InvalidQuery(f"{name}={value!r} is not an ISO 8601 time; use e.g. {name}=2024-05-01T08:00:00Z") from None
    return to_utc(dt)


def _choices(name: str, value: str | None, allowed: tuple[str, ...] | None = None) -> list[str] | None:
    if value is None or value == "":
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if allowed is not None:
        bad = [v for v in items if v not in allowed]
        if bad:
            raise InvalidQuery(f"{name}={','.join(bad)} is not valid; use one or more (comma-separated) of: "
                               f"{', '.join(allowed)}")
    return items


def _bool(name: str, value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise InvalidQuery(f"{name}={value!r} is not valid; use {name}=true or {name}=false")


@dataclass
class AlertQuery:
    """A parsed ``GET /alerts`` request."""

    states: list[str] | None = None
    severities: list[str] | None = None
    sensors: list[str] | None = None   # exact ids or fnmatch-style patterns with * and ?
    metrics: list[str] | None = None
    detectors: list[str] | None = None
    since: datetime | None = None      # last_triggered_at >= since
    until: datetime | None = None      # opened_at < until
    flapping: bool | None = None
    limit: int = DEFAULT_LIMIT
    before_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, params: dict[str, str | None]) -> AlertQuery:
        q = cls(
            states=_choices("state", params.get("state"), STATES),
            severities=_choices("severity", params.get("severity"), tuple(SEVERITY_RANK)),
            sensors=_choices("sensor", params.get("sensor")),
            metrics=_choices("metric", params.get("metric")),
            detectors=_choices("detector", params.get("detector"), DETECTORS),
            flapping=_bool("flapping", params.get("flapping")),
        )
        if params.get("since"):
            q.since = parse_time("since", params["since"] or "")
        if params.get("until"):
            q.until = parse_time("until", params["until"] or "")
        raw_limit = params.get("limit")
        if raw_limit not in (None, ""):
            try:
                q.limit = int(raw_limit or "")
            except ValueError:
                raise InvalidQuery(f"limit={raw_limit!r} is not a whole number; use 1..{MAX_LIMIT}") from None
            if not 1 <= q.limit <= MAX_LIMIT:
                raise InvalidQuery(f"limit={q.limit} is out of range; use 1..{MAX_LIMIT} and follow next_cursor "
                                   f"for more")
        if params.get("cursor"):
            q.before_id = decode_cursor(params["cursor"] or "")
        return q

    def sql(self) -> tuple[str, list[Any]]:
        """SELECT of one page (limit + 1 rows, to know whether another page follows)."""
        where: list[str] = []
        args: list[Any] = []

        def arg(v: Any) -> str:
            args.append(v)
            return f"${len(args)}"

        if self.states:
            where.append(f"state = ANY({arg(self.states)}::text[])")
        if self.severities:
            where.append(f"severity = ANY({arg(self.severities)}::text[])")
        if self.sensors:
            exact = [s for s in self.sensors if not any(c in s for c in "*?")]
            likes = [_like(s) for s in self.sensors if any(c in s for c in "*?")]
            ors = []
            if exact:
                ors.append(f"sensor_id = ANY({arg(exact)}::text[])")
            if likes:
                ors.append(f"sensor_id LIKE ANY({arg(likes)}::text[])")
            where.append("(" + " OR ".join(ors) + ")")
        if self.metrics:
            where.append(f"metric = ANY({arg(self.metrics)}::text[])")
        if self.detectors:
            where.append(f"detector = ANY({arg(self.detectors)}::text[])")
        if self.since is not None:
            where.append(f"last_triggered_at >= {arg(self.since)}")
        if self.until is not None:
            where.append(f"opened_at < {arg(self.until)}")
        if self.flapping is not None:
            where.append(f"flapping = {arg(self.flapping)}")
        if self.before_id is not None:
            where.append(f"id < {arg(self.before_id)}")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return f"SELECT * FROM alerts {clause} ORDER BY id DESC LIMIT {arg(self.limit + 1)}", args


def _like(pattern: str) -> str:
    out = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return out.replace("*", "%").replace("?", "_")
