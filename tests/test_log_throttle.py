"""Repeated log messages are summarised per back-off step, with nothing unaccounted for."""

from __future__ import annotations

import logging
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from urbanpulse.log_throttle import RepeatedMessageFilter


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, msg, args, None)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 3), st.sampled_from(["Unable connect to node with id %s: %s",
                                                             "Failed fetch messages from %s: %s"])),
                min_size=1, max_size=400))
def test_every_occurrence_is_either_logged_or_counted_in_a_later_summary(events) -> None:  # noqa: ANN001
    clock = _Clock()
    f = RepeatedMessageFilter(clock=clock)
    passed: dict[str, int] = {}
    summarised: dict[str, int] = {}
    for gap, template in events:
        clock.now += gap
        rec = _record(template, 111, "refused")
        if f.filter(rec):
            passed[template] = passed.get(template, 0) + 1
            m = re.search(r"\[and (\d+) more time\(s\)", str(rec.msg))
            summarised[template] = summarised.get(template, 0) + (int(m.group(1)) if m else 0)
    total = {t: sum(1 for _, x in events if x == t) for t in {x for _, x in events}}
    held_now = sum(s.held for s in f._seen.values())
    assert sum(passed.values()) + sum(summarised.values()) + held_now == len(events)
    for t, n in total.items():
        assert passed[t] >= 1, "the first occurrence of a message must be logged"
        assert passed[t] + summarised.get(t, 0) <= n


def test_a_flood_of_one_error_for_a_minute_writes_a_handful_of_lines() -> None:
    clock = _Clock()
    f = RepeatedMessageFilter(clock=clock)
    lines = 0
    for _ in range(60 * 60):  # 60 a second for 60 s, like aiokafka with its broker gone
        clock.now += 1 / 60
        lines += f.filter(_record("Unable connect to node with id %s: %s", 111, "refused"))
    assert lines <= 8  # 0, 1, 3, 7, 15, 31 s ... then every 60 s
    clock.now += 1000  # quiet for a long time: the next one is logged at once again
    assert f.filter(_record("Unable connect to node with id %s: %s", 111, "refused"))
