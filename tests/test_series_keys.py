"""SeriesKeys (storage/series_keys.py), the series registry's id -> (sensor, metric) table in sorted
arrays, answers exactly as the dict it replaced, over generated ids in any order, re-registrations,
removals and re-use after removal; and the rollup interval learner's narrowed counters (int32
saturating, a uint8 ring position) learn the same intervals as 64-bit ones."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from urbanpulse.storage.rollups import IntervalLearner
from urbanpulse.storage.series_keys import SeriesKeys

SENSORS = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
METRICS = st.sampled_from(["no2", "pm25", "temperature", "ß", ""])
IDS = st.integers(1, 2**31 - 1) | st.integers(1, 60)  # sparse (burnt serial values) and dense

add_op = st.tuples(st.just("add"), st.dictionaries(IDS, st.tuples(SENSORS, METRICS), max_size=40))
remove_op = st.tuples(st.just("remove"), st.lists(IDS, max_size=20))


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(add_op | remove_op, min_size=1, max_size=25), probe=st.lists(IDS, max_size=20))
def test_the_table_answers_as_a_dict_of_ids(ops: list[tuple[str, object]], probe: list[int]) -> None:
    table, model = SeriesKeys(), {}
    for kind, arg in ops:
        if kind == "add":
            keys: dict[int, tuple[str, str]] = arg  # type: ignore[assignment]
            ids = list(keys)
            table.add(ids, [keys[i][0] for i in ids], [("" + keys[i][1] + ".")[:-1] for i in ids])
            model.update(keys)
        else:
            gone: list[int] = arg  # type: ignore[assignment]
            table.remove(gone)
            for i in gone:
                model.pop(i, None)
        assert len(table) == len(model)
        asked = sorted(set(model) | set(probe) | {0, -1, 2**31, 2**40})
        assert [table.key_of(i) for i in asked] == [model.get(i) for i in asked]
        got = table.sensors_of(np.array(asked, np.int64))
        assert got == [model[i][0] if i in model else None for i in asked]
        for i in model:  # the very string given is kept (no copy), so a holder can share it
            assert table.sensors_of(np.array([i]))[0] is model[i][0]
    metrics = {id(table.key_of(i)[1]) for i in model if table.key_of(i)[1] == "no2"}
    assert len(metrics) <= 1  # one metric name object, however many series


def test_ids_arriving_in_increasing_order_append_and_others_merge() -> None:
    table = SeriesKeys()
    table.add([5, 3], ["e", "c"], ["m", "m"])
    table.add([9], ["i"], ["m"])  # appended
    table.add([1, 7], ["a", "g"], ["n", "m"])  # merged
    assert [table.key_of(i) for i in range(11)] == [
        None, ("a", "n"), None, ("c", "m"), None, ("e", "m"), None, ("g", "m"), None, ("i", "m"), None]
    table.add([3], ["c2"], ["n"])  # a re-registered id takes its new key, once
    assert len(table) == 5 and table.key_of(3) == ("c2", "n")


@settings(max_examples=200, deadline=None)
@given(samples=st.lists(st.lists(st.integers(1, 10**6), min_size=1, max_size=600), min_size=1, max_size=4),
       weight=st.integers(1, 2**30), min_samples=st.integers(1, 40))
def test_the_learner_keeps_the_last_ring_of_samples_past_its_counters_wrapping(
        samples: list[list[int]], weight: int, min_samples: int) -> None:
    """The ring position is a uint8 (wraps at 256, a multiple of RING) and ``seen`` an int32 that
    saturates: the interval learned is still the median of the last RING samples, and a series is
    ready once it has seen ``min_samples`` intervals, however many it has seen."""
    assert 256 % IntervalLearner.RING == 0
    learner = IntervalLearner()
    learner._grow(len(samples))
    longest = max(map(len, samples))
    for k in range(longest):
        sid = np.array([s for s in range(len(samples)) if k < len(samples[s])], np.int64)
        learner._add(sid, np.array([samples[s][k] for s in sid.tolist()], np.float64), np.full(len(sid), weight))
    got = learner.interval_s(np.arange(len(samples)), min_samples)
    for s, xs in enumerate(samples):
        seen = min(len(xs) * weight, IntervalLearner.SEEN_MAX)
        if seen >= min_samples:
            assert got[s] == np.median(np.float32(xs[-IntervalLearner.RING:]))
        else:
            assert np.isnan(got[s])
