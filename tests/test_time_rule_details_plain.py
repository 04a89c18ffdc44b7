"""A ``too_old`` or ``future_timestamp`` detail says the age and the limit in units an operator reads.

newcomer45 (left alone) and newcomer46: the quarantine said ``event time is older than 2.592e+06s
(validation.max_age_s)``; an operator had to work out that 2.592e+06 s is 30 days, and how old the reading
was it did not say at all. Now: ``event time is 41 days 3 h old, older than the 30 days validation.max_age_s
allows (2,592,000 s)``. Property over limits and ages (validator in process, a fixed clock)."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, TimeRules

NOW_S = 1_764_000_000.0  # 2025-11-24T16:00:00Z
CATALOGUE = MetricCatalogue.load()
#: a number written with an exponent ("2.592e+06"), which no operator should have to read
EXPONENT = re.compile(r"\d[eE][+-]?\d")
UNITS = {"day": 86400, "days": 86400, "h": 3600, "min": 60, "s": 1}


def seconds_of(text: str) -> float:
    """The seconds a :func:`plain_duration` text says (``1 day 6 h`` -> 108000)."""
    parts = re.findall(r"([\d.]+) (days|day|h|min|s)\b", text)
    assert parts and " ".join(f"{n} {u}" for n, u in parts) == text, text
    return sum(float(n) * UNITS[u] for n, u in parts)


def rejected(rules: TimeRules, age_s: float) -> str:
    payload = json.dumps({"sensor_id": "t1", "metric": "temperature", "ts": int((NOW_S - age_s) * 1000),
                          "value": 20.0}).encode()
    batch = MessageBatch(source="t", payloads=[payload])
    out = ReadingValidator(CATALOGUE, rules, clock=lambda: NOW_S).validate(
        batch, CanonicalJsonFormat().decode(batch), lambda k: payload)
    (r,) = out.rejections
    return r.detail


@settings(max_examples=200, deadline=None)
@given(limit_s=st.sampled_from([3600.0, 6 * 3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0, 90 * 86400.0,
                                365 * 86400.0, 1234.5, 2_600_000.0]),
       over_s=st.integers(min_value=1, max_value=400 * 86400))
def test_too_old_says_the_age_and_the_limit_in_plain_units(limit_s: float, over_s: int) -> None:
    age_s = limit_s + over_s
    detail = rejected(TimeRules(max_age_s=limit_s, min_event_time_s=None), age_s)
    assert not EXPONENT.search(detail), detail
    m = re.match(r"event time is (.+) old, older than the (.+) validation\.max_age_s allows \(([\d,]+) s\)", detail)
    assert m, detail
    said_age, said_limit, exact = seconds_of(m[1]), seconds_of(m[2]), int(m[3].replace(",", ""))
    assert exact == round(limit_s)
    # two units at most: the larger exact, the smaller truncated (never more than the next unit down off)
    assert 0 <= age_s - said_age < max(60.0, age_s / 24), (age_s, detail)
    assert 0 <= limit_s - said_limit < max(60.0, limit_s / 24), (limit_s, detail)


@settings(max_examples=50, deadline=None)
@given(skew_s=st.sampled_from([60.0, 300.0, 3600.0, 86400.0]), ahead_s=st.integers(min_value=1, max_value=86400))
def test_future_timestamp_says_the_limit_in_plain_units(skew_s: float, ahead_s: int) -> None:
    detail = rejected(TimeRules(max_future_skew_s=skew_s, max_age_s=None, min_event_time_s=None), -(skew_s + ahead_s))
    assert re.fullmatch(r"event time is more than (.+) ahead of the clock \(validation\.max_future_skew_s, "
                        r"[\d,]+ s\)", detail), detail
    assert seconds_of(re.match(r"event time is more than (.+) ahead", detail)[1]) == skew_s


def test_plain_duration_examples() -> None:
    from urbanpulse.plain_duration import plain_duration  # here: main has no such module

    assert [plain_duration(s) for s in (2_592_000, 90_000, 3660, 2700, 12, 0.25)] == [
        "30 days", "1 day 1 h", "1 h 1 min", "45 min", "12 s", "0.25 s"]
