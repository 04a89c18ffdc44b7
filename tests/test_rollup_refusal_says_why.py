"""``path=rollup`` refused says which rule the query breaks for each rollup level the selected series keep.

newcomer47, as a planner asking an hourly Beijing station (which keeps only ``rollup_1d``) for Europe/London days
with ``path=rollup``: the 422 listed every rule ("start and end must fall on whole UTC minutes (hours for
rollup_1h), the bucket must be a multiple of 1m whose boundaries in tz fall on whole minutes, every selected series
must keep that rollup level over the range, and percentiles need path=raw"), none of which the planner could tell
apart from the others: the query broke only the last-but-one (London days do not start at 00:00 UTC).

Hypothesis over queries (start/end offsets, bucket, tz) and the levels the series keep, planned as the
service plans them (``plan_query``): whenever the rollups cannot answer, the message names each kept level and the
rule that level breaks, and the rule named is one the query does break."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from urbanpulse.errors import InvalidRequest
from urbanpulse.query.plan import ROLLUPS, _aligned, plan_query, rollup_table
from urbanpulse.query.spec import parse_query

T0 = datetime(2015, 3, 1, tzinfo=timezone.utc)


@given(start_s=st.sampled_from([0, 30, 60, 90, 1800, 3600, 5400, 45000]),
       days=st.integers(1, 40), end_s=st.sampled_from([0, 60, 1800, 3600]),
       bucket=st.sampled_from(["1m", "2m", "5m", "30m", "1h", "3h", "12h", "1d", "month"]),
       tz=st.sampled_from(["UTC", "Europe/London", "Asia/Shanghai", "Asia/Kolkata", "America/St_Johns"]),
       kept=st.sets(st.sampled_from([t for t, _ in ROLLUPS])))
@settings(max_examples=300, deadline=None)
def test_a_refused_rollup_query_says_which_rule_it_breaks(start_s: int, days: int, end_s: int, bucket: str, tz: str,
                                                          kept: set[str]) -> None:
    start = T0 + timedelta(seconds=start_s)
    end = T0 + timedelta(days=days, seconds=end_s)
    q = parse_query({"sensor": "s", "start": start.isoformat(), "end": end.isoformat(), "bucket": bucket, "tz": tz,
                     "path": "rollup"})
    if rollup_table(q, 10_000_000, kept) is not None:
        return
    with pytest.raises(InvalidRequest) as refused:
        plan_query(q, max_buckets=10_000_000, usable=kept)
    text = str(refused.value)
    if not kept:
        assert "keep no rollup level" in text
        return
    for table, width in ROLLUPS:
        if table not in kept:
            assert f"{table} needs" not in text and f"{table} cannot" not in text, text
            continue
        ends_ok = _aligned(q.start, width) and _aligned(q.end, width)
        assert (f"{table} needs start and end on whole UTC" in text) == (not ends_ok), text
        if ends_ok:
            assert f"{table} cannot split" in text or f"in {tz} they do not" in text, text
