"""Memory per series (issue 14 item 5): per-series arrays grow by a quarter, not by doubling, and
the series registry shares one metric name across its series. The sizes themselves are measured
in benchmarks/series_memory.py; here only the rules behind them."""

from __future__ import annotations

import asyncpg
import numpy as np
import pytest
from hypothesis import given, strategies as st

import services
from readings import readings_columns
from urbanpulse.analytics import StreamAnalytics
from urbanpulse.capacity import GROWTH, grown
from urbanpulse.config import load_settings
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.series import SeriesRegistry
from urbanpulse.storage.writer import ReadingStore


@given(needed=st.integers(0, 10**7), current=st.integers(0, 10**7), minimum=st.integers(0, 4096))
def test_grown_gives_room_never_more_than_a_quarter_of_slack_beyond_the_need(needed: int, current: int,
                                                                             minimum: int) -> None:
    new = grown(needed, current, minimum)
    assert new >= needed and new >= minimum
    assert new <= max(needed, current + int(current * GROWTH), minimum)


@given(arrivals=st.lists(st.integers(1, 5000), min_size=1, max_size=60))
def test_growing_one_arrival_at_a_time_copies_a_bounded_number_of_rows(arrivals: list[int]) -> None:
    """Amortised O(1): the rows copied over all growths stay within a constant factor of the size."""
    cap, need, copied = 0, 0, 0
    for n in arrivals:
        need += n
        if need > cap:
            copied += cap
            cap = grown(need, cap, 16)
    assert cap >= need
    assert copied <= (1 + 1 / GROWTH) * need + 16


@pytest.fixture
async def pool(pg_dsn: str):
    async with services.migrated_pool(pg_dsn, "up_test_startup_memory", min_size=1, max_size=3) as p:
        yield p


async def test_per_series_arrays_hold_at_most_a_quarter_more_rows_than_series(pool: asyncpg.Pool) -> None:
    a = StreamAnalytics(load_settings(None), pool)
    await a.start()
    store = ReadingStore(pool, MonthlyPartitions())
    held = 0
    for k, n in enumerate((700, 1300, 2600, 900)):  # series arriving in batches of uneven size
        sensors = [f"mem-{k}-{i}" for i in range(n)]
        rc = readings_columns(sensors, "temperature", np.full(n, 1_700_000_000_000_000, np.int64), np.full(n, 20.0))
        sid = await store.series.ids_for(pool, rc.sensor_id, rc.metric)
        await a.ready(await a.prepare("replay", rc, sid))
        held += n
        assert len(a.slots) == held
        for capacity in (a.bank.capacity, a.windows.capacity, a.slots.capacity):
            assert held <= capacity <= max(1024, int(held * (1 + GROWTH)) + 1)
    await a.stop()


async def test_the_series_registry_shares_one_metric_name_across_its_series(pool: asyncpg.Pool) -> None:
    reg = SeriesRegistry()
    n = 200
    ids = await reg.ids_for(pool, [f"s-{i}" for i in range(n)], ["no2"] * n)
    assert len(set(ids.tolist())) == n
    metrics = {id(reg.key_of(int(i))[1]) for i in ids}
    assert len(metrics) == 1 and reg.key_of(int(ids[0])) == ("s-0", "no2")


_FREE_CHILD = r"""
import gc, json, sys
import numpy as np, psutil
from urbanpulse.capacity import MMAP_THRESHOLD, keep_large_arrays_off_the_heap
switched = keep_large_arrays_off_the_heap() if sys.argv[1] == "on" else False
np.ones(8 * MMAP_THRESHOLD // 8); gc.collect()  # one big array freed: glibc raises its threshold
proc = psutil.Process()
start = proc.memory_info().rss
big, small = [], []
for i in range(60):
    a = np.empty(MMAP_THRESHOLD * 2 // 8 + i)  # 2 MiB and a little, each a different size
    a.fill(1.0)  # touched: counted in RSS
    big.append(a)
    small.append([object() for _ in range(50)])  # long-lived objects between them
held = proc.memory_info().rss
del big
gc.collect()
print(json.dumps({"switched": switched, "held": held - start, "left": proc.memory_info().rss - start}))
"""


def test_large_arrays_freed_after_the_switch_go_back_to_the_operating_system() -> None:
    """What keeps growth copies from piling up as free heap (capacity.keep_large_arrays_off_the_heap):
    in a fresh process where glibc has already raised its mmap threshold, 120 MiB of 2 MiB arrays
    allocated between small long-lived objects stay in the process when freed, unless the switch
    is on (glibc; elsewhere the switch does nothing and says so)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parent.parent / "src")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    runs = {mode: json.loads(subprocess.run([sys.executable, "-c", _FREE_CHILD, mode], env=env, check=True,
                                            capture_output=True, text=True, timeout=120).stdout)
            for mode in ("off", "on")}
    assert runs["on"]["switched"], "glibc's mallopt expected (CI runs Debian)"
    for r in runs.values():
        assert r["held"] > 100 * 2**20
    assert runs["on"]["left"] < 20 * 2**20  # the 120 MiB went back
    assert runs["off"]["left"] > 60 * 2**20  # without the switch most of it stays


async def test_the_slot_map_keeps_the_registrys_sensor_string_and_one_metric_name(pool: asyncpg.Pool) -> None:
    """Wired as the service wires it (``sensors_of``), the analytics' slot map keeps the series
    registry's own sensor id string, not the one decoded from the series' first reading (equal, a
    second copy per series otherwise), and one metric name object across its series."""
    store = ReadingStore(pool, MonthlyPartitions())
    a = StreamAnalytics(load_settings(None), pool, sensors_of=store.series.sensors_of)
    await a.start()
    n = 300
    sensors = [f"share-{i}" for i in range(n)]
    decoded = [("" + s + ".")[:-1] for s in sensors]  # fresh strings, as decoding makes them
    rc = readings_columns(decoded, [("" + "pm25" + ".")[:-1] for _ in range(n)],
                          np.full(n, 1_700_000_000_000_000, np.int64), np.full(n, 20.0))
    sid = await store.series.ids_for(pool, rc.sensor_id, rc.metric)
    await a.ready(await a.prepare("replay", rc, sid))
    slots = a.slots.lookup(sid).tolist()
    assert [a.slots.sensor_metric(k) for k in slots] == [(s, "pm25") for s in sensors]
    assert all(a.slots.sensor[k] is store.series.key_of(i)[0] for k, i in zip(slots, sid.tolist()))
    assert not any(a.slots.sensor[k] is d for k, d in zip(slots, decoded))
    assert len({id(a.slots.metric[k]) for k in slots}) == 1
    await a.stop()


def test_sensor_profiles_keep_no_entry_per_sensor_without_groups_and_resolve_alike() -> None:
    """Without sensor groups configured every sensor's groups are (): nothing is cached per sensor
    (it was ~40 bytes a series), and the profile ids are those the groups give when configured."""
    from urbanpulse.detect.profiles import ProfileTable
    from urbanpulse.detect.settings import DetectionSettings

    plain = ProfileTable(DetectionSettings())
    ids = plain.profile_ids([f"s-{i}" for i in range(50)], ["no2"] * 50)
    assert not plain._groups_of_sensor and set(ids.tolist()) == {plain.resolve_params((), "no2")}
    grouped = ProfileTable(DetectionSettings(groups=[{"sensors": ["s-1*"], "detectors": {"spike": {"threshold": 9}}}]))
    gids = grouped.profile_ids([f"s-{i}" for i in range(50)], ["no2"] * 50).tolist()
    assert len(set(gids)) == 2 and gids[1] != gids[0] and len(grouped._groups_of_sensor) == 50
