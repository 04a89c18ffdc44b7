"""The serve demo's data path without a server: incident injection, the hourly feed and the
station list, over generated schedules (hypothesis) and the real bundled station files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbanpulse.datasets.beijing import read_station, station_files
from urbanpulse.demo_feed import HOUR_MS, HourlyFeed
from urbanpulse.demo_incidents import Silent, Spike, Stuck, default_schedule, inject, spike_value
from urbanpulse.demo_serve import BUNDLED_CITY
from urbanpulse.demo_stations import load_sites, registry_entries
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.registry.model import catalogue_problems

HOURS = 120  # a slice of the bundled month keeps each example fast


@pytest.fixture(scope="module")
def city() -> list:
    """The twelve bundled stations, cut to HOURS hours (real values, NA cells included)."""
    import dataclasses

    out = []
    for f in station_files(BUNDLED_CITY):
        d = read_station(f)
        out.append(dataclasses.replace(d, ts_ms=d.ts_ms[:HOURS], values={m: v[:HOURS] for m, v in d.values.items()}))
    return out


STATIONS = sorted(load_sites())
METRIC = st.sampled_from(["pm2_5", "pm10", "temperature", "co"])
HOUR = st.integers(-5, HOURS + 5)
LENGTH = st.integers(0, 40)
INCIDENT = st.one_of(
    st.builds(Spike, st.sampled_from(STATIONS), METRIC, HOUR, st.one_of(st.none(), st.floats(0, 1900))),
    st.builds(Stuck, st.sampled_from(STATIONS), METRIC, HOUR, LENGTH),
    st.builds(Silent, st.sampled_from(STATIONS), HOUR, LENGTH),
)
SCHEDULES = st.lists(INCIDENT, max_size=8)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _named_cells(station: str, incidents: list) -> tuple[dict[str, set[int]], set[int]]:
    """Hours each metric's value may change at, and the silent hours, as the schedule says."""
    cells: dict[str, set[int]] = {}
    silent: set[int] = set()
    for inc in incidents:
        if inc.station != station:
            continue
        hours = {h for h in inc.hours() if 0 <= h < HOURS}
        if isinstance(inc, Silent):
            silent |= hours
        else:
            cells.setdefault(inc.metric, set()).update(hours)
    return cells, silent


@FAST
@given(SCHEDULES)
def test_injection_changes_only_the_cells_an_incident_names(city: list, incidents: list) -> None:
    originals = {d.station: {m: v.copy() for m, v in d.values.items()} for d in city}
    for d in city:
        out = inject(d, incidents)
        cells, silent = _named_cells(d.station, incidents)
        assert set(np.flatnonzero(out.silent).tolist()) == silent
        for metric, column in out.data.values.items():
            keep = np.ones(HOURS, dtype=bool)
            keep[sorted(cells.get(metric, ()))] = False
            np.testing.assert_array_equal(column[keep], d.values[metric][keep])  # NaN == NaN here
        np.testing.assert_array_equal(out.data.ts_ms, d.ts_ms)
        for metric, column in d.values.items():  # the dataset itself is never modified
            np.testing.assert_array_equal(column, originals[d.station][metric])


@FAST
@given(SCHEDULES)
def test_each_incident_writes_what_it_says(city: list, incidents: list) -> None:
    by_station = {d.station: (d, inject(d, incidents)) for d in city}
    for inc in incidents:
        d, out = by_station[inc.station]
        later = [o for o in incidents[incidents.index(inc) + 1:] if o.station == inc.station and not isinstance(o, Silent)]
        if isinstance(inc, Silent) or any(set(o.hours()) & set(inc.hours()) and o.metric == inc.metric for o in later):
            continue  # a later incident on the same cells wins; silence is checked above
        column = out.data.values[inc.metric]
        hours = [h for h in inc.hours() if 0 <= h < HOURS]
        if isinstance(inc, Spike) and hours:
            expected = inc.value if inc.value is not None else spike_value(d.values[inc.metric][max(0, inc.hour - 24):inc.hour])
            assert column[inc.hour] == expected
        elif isinstance(inc, Stuck) and hours:
            assert np.all(column[hours] == column[hours[0]]) and np.isfinite(column[hours[0]])


def test_a_spike_stays_inside_the_catalogue_range_and_far_above_the_level() -> None:
    catalogue = MetricCatalogue.load()
    top = catalogue.specs[catalogue.index["pm2_5"]].max
    for recent in (np.array([5.0, 9.0]), np.array([150.0, np.nan, 300.0]), np.array([np.nan]), np.array([])):
        v = spike_value(recent)
        level = np.nanmax(recent) if np.isfinite(recent).any() else 0.0
        assert v <= top and v >= 600.0 and (v >= 6 * level or v == 1800.0)


@settings(max_examples=80, deadline=None)
@given(st.integers(3, 12), st.integers(0, 100), st.integers(1, 800), st.integers(28, 100))
def test_default_schedule_rounds_use_three_stations_and_never_overlap_on_one(n: int, first: int, span: int,
                                                                             every: int) -> None:
    stations = STATIONS[:n]
    incidents = default_schedule(stations, first, span, every)
    assert len(incidents) == 3 * len(range(first, span, every))
    for k in range(0, len(incidents), 3):
        rnd = incidents[k:k + 3]
        assert {type(i) for i in rnd} == {Silent, Spike, Stuck}
        assert len({i.station for i in rnd}) == 3
        assert all(first + (k // 3) * every <= i.hours().start < first + (k // 3 + 1) * every for i in rnd)
    for a in incidents:
        for b in incidents:
            if a is not b and a.station == b.station:
                assert not set(a.hours()) & set(b.hours()), (a, b)
    with pytest.raises(ValueError):
        default_schedule(stations[:2], first, span)


@FAST
@given(SCHEDULES, st.integers(0, 2))
def test_the_feed_sends_every_reading_once_except_silent_hours(city: list, incidents: list, loop: int) -> None:
    injected = [inject(d, incidents) for d in city[:4]]  # four stations: the schedules name all twelve
    feed = HourlyFeed(injected)
    sent: dict[tuple[str, str, int], float | None] = {}
    for hour in range(feed.hours):
        for message in feed.messages(hour, loop):
            for r in orjson.loads(message):
                key = (r["sensor_id"], r["metric"], r["ts"])
                assert key not in sent
                sent[key] = r["value"]
    expected = {}
    for inj in injected:
        for hour in np.flatnonzero(~inj.silent).tolist():
            ts = int(inj.data.ts_ms[hour]) + loop * HOURS * HOUR_MS
            for metric, column in inj.data.values.items():
                v = column[hour]
                expected[(inj.data.sensor_id, metric, ts)] = None if np.isnan(v) else float(v)
    assert sent == expected


def test_a_loop_goes_on_one_hour_after_the_last(city: list) -> None:
    feed = HourlyFeed([inject(d, []) for d in city], hours=50)
    assert feed.ts_ms(0, 1) == feed.ts_ms(49, 0) + HOUR_MS
    assert feed.ts_ms(0, 2) == feed.ts_ms(0, 1) + 50 * HOUR_MS


def test_every_dataset_station_has_a_real_position_in_beijing() -> None:
    sites = load_sites()
    stations = [read_station(f) for f in station_files(BUNDLED_CITY)]
    assert sorted(d.station for d in stations) == sorted(sites)
    catalogue = MetricCatalogue.load()
    entries = registry_entries(stations)
    assert len({(e.lat, e.lon) for e in entries}) == 12  # twelve distinct sites
    for e in entries:
        assert 39.8 < e.lat < 40.4 and 116.1 < e.lon < 116.7, e  # Beijing's urban area and near suburbs
        assert e.area and e.data_class.value == "open"
        assert {m: i.interval_s for m, i in e.metrics.items()} == dict.fromkeys(stations[0].metrics, 3600.0)
        assert catalogue_problems(e, catalogue) == []
    # two known sites, as the source lists them: Dongsi in Dongcheng, Dingling by the Ming Tombs
    assert (sites["Dongsi"].lat, sites["Dongsi"].lon, sites["Dongsi"].district) == (39.929, 116.417, "Dongcheng")
    assert (sites["Dingling"].lat, sites["Dingling"].lon) == (40.292, 116.22)


def test_the_bundled_month_is_the_first_744_hours_of_the_dataset_files() -> None:
    from urbanpulse.datasets import datasets_root

    full = {d.station: d for d in map(read_station, station_files(datasets_root() / "beijing_multisite_air_quality"))}
    for f in station_files(BUNDLED_CITY):
        month = read_station(f)
        whole = full[month.station]
        assert len(month) == 744
        np.testing.assert_array_equal(month.ts_ms, whole.ts_ms[:744])
        for metric, column in month.values.items():
            np.testing.assert_array_equal(column, whole.values[metric][:744])
    assert Path(BUNDLED_CITY / "README.md").is_file()
