"""The alert lifecycle as pure logic: AlertManager.process without a database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from urbanpulse.alerts.inputs import ClosedWindowsRef, Detections, SilencesRef
from urbanpulse.alerts.lifecycle import AlertManager
from urbanpulse.alerts.settings import AlertSettings, MaintenanceWindowSettings

MIN = 60_000_000
T0 = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z


def manager(**kw) -> AlertManager:
    m = AlertManager(AlertSettings(**kw))
    m.assign([0, 1], [10, 11], ["station-a", "station-b"], ["pm2_5", "pm2_5"])
    return m


def det(*rows: tuple) -> Detections:
    """rows: (slot, ts_us, detector[, score[, value[, severity]]])"""
    out = []
    for r in rows:
        slot, ts, name = r[:3]
        out.append({"slot": slot, "ts_us": ts, "detector": name, "score": r[3] if len(r) > 3 else 0.9,
                    "value": r[4] if len(r) > 4 else 500.0, "severity": r[5] if len(r) > 5 else None})
    return Detections.of(out)


def windows(slot: int, first_start: int, n: int, size: int = MIN) -> ClosedWindowsRef:
    starts = [first_start + i * size for i in range(n)]
    return ClosedWindowsRef.of([slot] * n, starts, [s + size for s in starts])


def kinds(changes) -> list[str]:
    return [e.kind for e in changes.events]


def test_first_decision_opens_one_alert_with_its_trigger():
    m = manager()
    ch = m.process(det((0, T0, "spike", 0.97, 812.0)))
    assert kinds(ch) == ["opened"]
    (snap,) = ch.alerts.values()
    assert (snap.series_id, snap.sensor_id, snap.metric, snap.detector) == (10, "station-a", "pm2_5", "spike")
    assert snap.state == "open" and snap.opened_at_us == T0 and snap.trigger_count == 1
    assert snap.triggers[0].value == 812.0 and snap.max_score == 0.97
    assert snap.severity == "warning"


def test_further_decisions_update_the_open_alert_instead_of_opening_another():
    m = manager()
    m.process(det((0, T0, "spike", 0.5)))
    ch = m.process(det((0, T0 + 10_000_000, "spike", 0.8), (0, T0 + 20_000_000, "spike", 0.6)))
    assert kinds(ch) == ["updated"]  # two triggers in one batch coalesce into one event
    (snap,) = ch.alerts.values()
    assert snap.opened_at_us == T0 and snap.trigger_count == 3 and snap.max_score == 0.8
    assert snap.last_triggered_at_us == T0 + 20_000_000
    assert len(m.open_alerts()) == 1


def test_other_detector_or_series_gets_its_own_alert():
    m = manager()
    ch = m.process(det((0, T0, "spike"), (0, T0, "flatline"), (1, T0, "spike")))
    assert kinds(ch) == ["opened"] * 3
    assert len(m.open_alerts()) == 3


def test_redelivered_decision_is_ignored():
    m = manager()
    m.process(det((0, T0, "spike"), (0, T0 + MIN, "spike")))
    ch = m.process(det((0, T0 + MIN, "spike")))
    assert not ch and m.get_open(10, "spike").trigger_count == 2


def test_only_the_latest_triggers_are_kept():
    m = manager(max_triggers=5)
    m.process(det(*[(0, T0 + i * 1_000_000, "spike", 0.9, float(i)) for i in range(12)]))
    a = m.get_open(10, "spike")
    assert a.trigger_count == 12 and [t.value for t in a.triggers] == [7, 8, 9, 10, 11]


def test_auto_resolves_after_n_normal_windows_that_start_after_the_last_trigger():
    m = manager(resolve_after_windows=3)
    m.process(det((0, T0 + 30_000_000, "spike")))
    # the window holding the trigger does not count; the next two are not enough
    assert not m.process(closed=windows(0, T0, 3))
    ch = m.process(closed=windows(0, T0 + 3 * MIN, 1))
    assert kinds(ch) == ["resolved"]
    (snap,) = ch.alerts.values()
    assert snap.state == "resolved" and snap.resolved_by == "auto" and snap.resolved_at_us == T0 + 4 * MIN
    assert m.open_alerts() == []


def test_a_trigger_resets_the_count_of_normal_windows():
    m = manager(resolve_after_windows=2)
    m.process(det((0, T0, "spike")))
    m.process(closed=windows(0, T0 + MIN, 1))
    m.process(det((0, T0 + 2 * MIN + 1, "spike")))
    assert not m.process(closed=windows(0, T0 + 3 * MIN, 1))
    assert kinds(m.process(closed=windows(0, T0 + 4 * MIN, 1))) == ["resolved"]


def test_windows_and_decisions_of_one_batch_are_merged_in_event_time():
    m = manager(resolve_after_windows=2, flap_window=timedelta(minutes=30))
    m.process(det((0, T0, "spike")))
    # one batch: two normal windows close, then the anomaly returns -> resolved, then re-opened
    ch = m.process(det((0, T0 + 5 * MIN, "spike")), closed=windows(0, T0 + MIN, 2))
    assert kinds(ch) == ["resolved", "reopened"]


def test_windows_of_other_series_do_not_resolve():
    m = manager(resolve_after_windows=1)
    m.process(det((0, T0, "spike")))
    assert not m.process(closed=windows(1, T0 + MIN, 5))
    assert len(m.open_alerts()) == 1


def test_acknowledged_alert_keeps_its_state_when_updated_and_still_auto_resolves():
    m = manager(resolve_after_windows=1)
    m.process(det((0, T0, "spike")))
    m.observe_stored({"series_id": 10, "detector": "spike", "opened_at": datetime.fromtimestamp(T0 / 1e6, timezone.utc),
                      "reopen_count": 0, "state": "acknowledged", "acknowledged_at": datetime.now(timezone.utc),
                      "acknowledged_by": "ops", "note": "looking", "resolved_at": None, "resolved_by": None})
    ch = m.process(det((0, T0 + 1_000_000, "spike")))
    assert [s.state for s in ch.alerts.values()] == ["acknowledged"]
    ch = m.process(closed=windows(0, T0 + MIN, 1))
    assert kinds(ch) == ["resolved"]


def test_refiring_within_flap_window_reopens_the_same_alert_and_flapping_is_marked():
    m = manager(resolve_after_windows=1, flap_window=timedelta(hours=1), flap_threshold=2)
    t = T0
    m.process(det((0, t, "spike")))
    keys = set()
    seen: list[str] = []
    for cycle in range(3):
        seen += kinds(m.process(closed=windows(0, t + MIN, 1)))
        t += 5 * MIN
        ch = m.process(det((0, t, "spike")))
        seen += kinds(ch)
        keys |= set(ch.alerts)
    assert len(keys) == 1  # always the same row
    assert seen == ["resolved", "reopened", "resolved", "reopened", "flapping", "resolved", "reopened"]
    a = m.get_open(10, "spike")
    assert a.reopen_count == 3 and a.flapping


def test_refiring_after_flap_window_opens_a_new_alert():
    m = manager(resolve_after_windows=1, flap_window=timedelta(minutes=10))
    m.process(det((0, T0, "spike")))
    m.process(closed=windows(0, T0 + MIN, 1))
    ch = m.process(det((0, T0 + 11 * MIN, "spike")))
    assert kinds(ch) == ["opened"]
    (snap,) = ch.alerts.values()
    assert snap.opened_at_us == T0 + 11 * MIN and snap.reopen_count == 0


def test_severity_from_detection_row_then_config():
    m = manager(severity={"spike": "info"}, default_severity="critical")
    ch = m.process(det((0, T0, "spike"), (0, T0, "ewma"), (1, T0, "spike", 0.9, 1.0, "critical")))
    sev = {(s.series_id, s.detector): s.severity for s in ch.alerts.values()}
    assert sev == {(10, "spike"): "info", (10, "ewma"): "critical", (11, "spike"): "critical"}


def test_maintenance_window_mutes_matching_sensors_in_event_time():
    start = datetime.fromtimestamp(T0 / 1e6, timezone.utc)
    m = manager(maintenance=[MaintenanceWindowSettings(sensor="station-a*", starts_at=start,
                                                       ends_at=start + timedelta(hours=1))])
    ch = m.process(det((0, T0 + MIN, "spike"), (1, T0 + MIN, "spike"), (0, T0 + 61 * MIN, "flatline")))
    assert ch.muted == 1 and m.muted_total == 1
    assert {(s.series_id, s.detector) for s in ch.alerts.values()} == {(11, "spike"), (10, "flatline")}


def test_silence_opens_one_alert_and_repeated_reports_of_the_same_gap_change_nothing():
    m = manager(resolve_after_windows=1)
    sil = SilencesRef.of([0], [T0], [6 * 3600 * 1_000_000], [1.0])
    ch = m.process(silences=sil)
    assert kinds(ch) == ["opened"]
    (snap,) = ch.alerts.values()
    assert snap.detector == "silence" and snap.severity == "critical" and snap.opened_at_us == T0
    assert snap.triggers[0].value == 6 * 3600
    assert not m.process(silences=SilencesRef.of([0], [T0], [7 * 3600 * 1_000_000], [1.0]))
    # readings resume: the first window after the gap resolves it
    assert kinds(m.process(closed=windows(0, T0 + 7 * 3600 * 1_000_000, 1))) == ["resolved"]


def test_unknown_slots_are_counted_not_alerted():
    m = manager()
    ch = m.process(silences=SilencesRef.of([7], [T0], [MIN], [1.0]))
    assert not ch.alerts and ch.unknown_slots == 1


def test_from_scores_takes_decisions_and_skips_silence_columns():
    class Scores:
        slot = np.array([0, 0, 1], np.int32)
        ts_us = np.array([T0, T0 + 1, T0], np.int64)
        value = np.array([1.0, 2.0, 3.0])
        score = np.array([[0.9, 0.1, 1.0], [0.2, 0.95, 1.0], [0.1, 0.1, 1.0]])
        decision = np.array([[True, False, True], [False, True, True], [False, False, True]])
        names = ("spike", "ewma", "silence")

    d = Detections.from_scores(Scores, severities={"ewma": "critical"})
    assert len(d) == 2 and [d.names[i] for i in d.detector] == ["spike", "ewma"]
    assert d.score.tolist() == [0.9, 0.95] and d.severity == [None, "critical"]
    ch = manager().process(d)
    assert {(s.detector, s.severity) for s in ch.alerts.values()} == {("spike", "warning"), ("ewma", "critical")}


def test_evicted_slot_keeps_the_alert_by_series_and_reassigning_finds_it():
    m = manager(resolve_after_windows=1)
    m.process(det((0, T0, "spike")))
    m.evict([0])
    m.assign([5], [10], ["station-a"], ["pm2_5"])
    assert kinds(m.process(closed=windows(5, T0 + MIN, 1))) == ["resolved"]


@given(st.integers(1, 40), st.integers(0, 2**31 - 1), st.integers(1, 5))
@hsettings(max_examples=40, deadline=None)
def test_silence_of_a_source_is_one_incident_from_the_group_size_on(n: int, seed: int, need: int):
    """n series of one source silent in one check: from `silence_group_min` series on, one alert for the
    source; below it, one per series. Reports in any order, repeated, change nothing more."""
    rng = np.random.default_rng(seed)
    m = AlertManager(AlertSettings(silence_group_min=need))
    m.assign(list(range(n)), list(range(1000, 1000 + n)), [f"s{i}" for i in range(n)], ["v"] * n)
    order = rng.permutation(n)
    last = T0 + rng.integers(0, MIN, n)
    gap = (3 * MIN + rng.integers(0, MIN, n))
    sil = SilencesRef.of(order.tolist(), last[order].tolist(), gap[order].tolist(), [0.7] * n, ["north"] * n)
    ch = m.process(silences=sil)
    opened = [e.alert for e in ch.events if e.kind == "opened"]
    if n >= need:
        assert len(opened) == 1 and opened[0].sensor_id == "source:north" and opened[0].trigger_count == n
    else:
        assert sorted(a.series_id for a in opened) == list(range(1000, 1000 + n))
    assert not m.process(silences=sil).events


@given(st.integers(1, 6), st.integers(1, 8), st.integers(0, 2**31 - 1), st.integers(2, 5))
@hsettings(max_examples=40, deadline=None)
def test_a_station_with_many_metrics_going_quiet_is_not_its_whole_source(sensors: int, metrics: int, seed: int,
                                                                         need: int):
    """Grouping counts distinct sensors, not series: `sensors` stations with `metrics` series each, all
    silent in one check, are one source incident only from `silence_group_min` stations on; below
    that every series keeps its own silence alert, however many metrics a station has."""
    rng = np.random.default_rng(seed)
    n = sensors * metrics
    m = AlertManager(AlertSettings(silence_group_min=need))
    m.assign(list(range(n)), list(range(1000, 1000 + n)), [f"st{i // metrics}" for i in range(n)],
             [f"m{i % metrics}" for i in range(n)])
    order = rng.permutation(n)
    last = T0 + rng.integers(0, MIN, n)
    gap = 3 * MIN + rng.integers(0, MIN, n)
    sil = SilencesRef.of(order.tolist(), last[order].tolist(), gap[order].tolist(), [0.7] * n, ["gw"] * n)
    opened = [e.alert for e in m.process(silences=sil).events if e.kind == "opened"]
    if sensors >= need:
        assert len(opened) == 1 and opened[0].sensor_id == "source:gw" and opened[0].trigger_count == n
    else:
        assert sorted(a.series_id for a in opened) == list(range(1000, 1000 + n))
        assert not any(a.sensor_id.startswith("source:") for a in opened)
