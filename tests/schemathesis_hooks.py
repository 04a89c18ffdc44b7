"""Schemathesis hooks for tests/test_api_conformance.py (loaded through SCHEMATHESIS_HOOKS).

JSON Schema cannot say that a maintenance window's ``ends_at`` comes after its ``starts_at``;
the API answers such a body 422, which is right. So that generated bodies valid by the schema
are also valid by that rule, the two times of a generated window are put in order.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import schemathesis


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@schemathesis.hook("map_body").apply_to(path="/maintenance", method="POST")
def order_window(context: schemathesis.HookContext, body: Any) -> Any:
    if isinstance(body, dict):
        starts, ends = _time(body.get("starts_at")), _time(body.get("ends_at"))
        if starts and ends and starts.tzinfo and ends.tzinfo and ends <= starts:
            if ends == starts:
                ends = starts + timedelta(seconds=1) if starts.year < 9999 else starts
                starts = ends - timedelta(seconds=1)
            else:
                starts, ends = ends, starts
            body = {**body, "starts_at": starts.isoformat(), "ends_at": ends.isoformat()}
    return body
