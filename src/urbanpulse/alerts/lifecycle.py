"""The alert lifecycle as pure in-memory logic: decisions and closed windows in, changes out.

``AlertManager`` is the authority for the alerts of the series this process ingests. It does no
IO in :meth:`AlertManager.process`, so the pipeline can call it at batch formation (strictly in
batch order) and write the resulting :class:`AlertChanges` inside the batch's transaction
later. Rules, all in *event* time:

- one alert per (series, detector) is open or acknowledged at a time; a further anomalous
  decision updates it (trigger_count, last_triggered_at, max_score, the latest triggers);
- a decision whose time is not after the alert's last trigger is a redelivery and is ignored;
- auto-resolve after ``resolve_after_windows`` closed windows of the series that start after the
  alert's last trigger (acknowledged alerts too);
- a resolved alert that fires again within ``flap_window`` of its last trigger is re-opened
  (same row, reopen_count + 1); ``flap_threshold`` re-opens within ``flap_window`` mark it
  flapping (webhooks stay quiet for it); after that long without a trigger a new alert opens;
- detections inside a maintenance window are counted as muted and raise nothing.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from urbanpulse.alerts.inputs import ClosedWindowsLike, Detections, SilencesLike
from urbanpulse.alerts.maintenance import MaintenanceCalendar, MaintenanceWindow
from urbanpulse.alerts.model import STATE_RANK, Alert, AlertChanges, PendingEvent, Trigger, dt_to_us, max_severity
from urbanpulse.alerts.settings import AlertSettings
from urbanpulse.slots import SlotMap

log = logging.getLogger(__name__)

SILENCE = "silence"
_NO_TIME = np.iinfo(np.int64).min
# merge order at equal event time: a window ending at t closes before a reading at t is judged
_WINDOW, _DETECTION, _SILENCE = 0, 1, 2
GROUP_METRIC = "*"


def source_series_id(source: str) -> int:
    """The (negative, stable) series id of a source's silence incident: alerts are keyed by
    (series_id, detector), and no real series id is negative."""
    return -(zlib.crc32(source.encode()) & 0x7FFFFFFF) - 1


def source_sensor_id(source: str) -> str:
    """The sensor_id a source's silence incident is listed under."""
    return f"source:{source}"

class _ChangeLog:
    """Collects snapshots and events of one process() call, coalescing updates per alert."""

    def __init__(self) -> None:
        self.changes = AlertChanges()
        self._last: dict[tuple[int, str, int], int] = {}

    def record(self, alert: Alert, kind: str) -> None:
        snap = alert.snapshot()
        key = alert.key
        self.changes.alerts[key] = snap
        events = self.changes.events
        j = self._last.get(key)
        if kind == "updated" and j is not None and events[j].kind in ("opened", "reopened", "updated"):
            events[j] = PendingEvent(events[j].kind, snap)
            return
        self._last[key] = len(events)
        events.append(PendingEvent(kind, snap))


class AlertManager:
    """In-memory authority for the open alerts of the series this process owns.

    Slots are resolved through ``slots``, the process's one :class:`SlotMap` (the pipeline passes
    its own, so detectors, windows and alerts cannot disagree about which series a slot holds);
    without one the manager keeps a private map filled by :meth:`assign` (tests, tools)."""

    def __init__(self, settings: AlertSettings | None = None, slots: SlotMap | None = None) -> None:
        self.settings = settings or AlertSettings()
        self.slots = slots if slots is not None else SlotMap()
        self._open: dict[tuple[int, str], Alert] = {}
        self._by_series: dict[int, dict[str, Alert]] = {}
        self._resolved: dict[tuple[int, str], Alert] = {}  # latest resolved per key, for re-opening
        # series whose silence went to their source's incident -> (that incident's series id, the
        # series' last silent reading counted there)
        self._member_of: dict[int, tuple[int, int]] = {}
        self._config_windows = [MaintenanceWindow.from_settings(w) for w in self.settings.maintenance]
        self.maintenance = MaintenanceCalendar(self._config_windows)
        self.event_now_us: int = int(_NO_TIME)
        self.muted_total = 0
        self._flap_us = int(self.settings.flap_window.total_seconds() * 1_000_000)

    # -- slots -----------------------------------------------------------------------------

    def assign(self, slots: Sequence[int] | np.ndarray, series_ids: Sequence[int] | np.ndarray,
               sensor_ids: Sequence[str], metrics: Sequence[str]) -> None:
        """Place series at slots in the slot map (for callers without a pipeline: the pipeline's
        own slot map already holds them). Closed windows and silences arrive by slot; this is how
        they find their alerts."""
        self.slots.put(slots, series_ids, sensor_ids, metrics)

    def evict(self, slots: Sequence[int] | np.ndarray) -> None:
        """Free slots in the slot map; their open alerts stay (keyed by series)."""
        self.slots.release(np.asarray(slots, np.int64))

    def _sensor_metric(self, slots: np.ndarray) -> tuple[list[str], list[str]]:
        pairs = [self.slots.sensor_metric(s) for s in slots.tolist()]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    # -- maintenance -----------------------------------------------------------------------

    def set_maintenance(self, stored: Iterable[MaintenanceWindow]) -> None:
        """Replace the stored (API) maintenance windows; the configured ones always apply."""
        self.maintenance.replace([*self._config_windows, *stored])

    # -- restore ---------------------------------------------------------------------------

    def restore(self, stored: Iterable[Alert]) -> int:
        """Take the stored open/acknowledged alerts (and recently resolved ones, for re-opening;
        ``AlertStore.load_recent``) into memory, so a restarted service updates them instead of
        opening duplicates. Returns the number of open/acknowledged alerts restored."""
        self._open.clear()
        self._by_series.clear()
        self._resolved.clear()
        n = 0
        for a in stored:
            if a.state == "resolved":
                self._resolved[(a.series_id, a.detector)] = a
            else:
                self._add_open(a)
                n += 1
            self.event_now_us = max(self.event_now_us, a.last_triggered_at_us)
        log.info("restored %d open alerts and %d recently resolved ones", n, len(self._resolved))
        return n

    # -- the batch step --------------------------------------------------------------------

    def process(self, detections: Detections | None = None, closed: ClosedWindowsLike | None = None,
                silences: SilencesLike | None = None) -> AlertChanges:
        """Turn one batch's anomalous decisions, closed windows and silences into alert changes.

        Everything is merged in event time, so a window that closed before a reading in the same
        batch counts as normal for the alerts older than it. No IO; call in batch order."""
        cl = _ChangeLog()
        times: list[np.ndarray] = []
        kinds: list[np.ndarray] = []
        rows: list[np.ndarray] = []

        det = detections if detections is not None and len(detections) else None
        d_series = d_sensor = d_metric = None
        if det is not None:
            d_series, d_sensor, d_metric, known = self._resolve_series(det)
            muted = self.maintenance.muted(d_sensor, det.ts_us) & known
            n_muted = int(muted.sum())
            cl.changes.muted += n_muted
            self.muted_total += n_muted
            keep = np.flatnonzero(known & ~muted)
            cl.changes.unknown_slots += int((~known).sum())
            times.append(det.ts_us[keep])
            kinds.append(np.full(len(keep), _DETECTION, np.int8))
            rows.append(keep)

        sil = silences if silences is not None and len(silences.slot) else None
        s_series = None
        if sil is not None:
            slots = np.asarray(sil.slot, np.int64)
            s_series = self.slots.series(slots)
            known = s_series >= 0
            at = np.asarray(sil.last_ts_us, np.int64) + np.asarray(sil.gap_us, np.int64)
            sensors, _ = self._sensor_metric(slots)
            muted = self.maintenance.muted(sensors, at) & known
            cl.changes.muted += int(muted.sum())
            self.muted_total += int(muted.sum())
            cl.changes.unknown_slots += int((~known).sum())
            keep = np.flatnonzero(known & ~muted)
            times.append(at[keep])
            kinds.append(np.full(len(keep), _SILENCE, np.int8))
            rows.append(keep)

        if closed is not None and len(closed.slot):
            slots = np.asarray(closed.slot, np.int64)
            with_alert = np.fromiter([*self._by_series, *self._member_of], np.int64,
                                     len(self._by_series) + len(self._member_of))
            relevant = np.isin(self.slots.series(slots), with_alert)
            if det is not None:
                relevant |= np.isin(slots, np.asarray(det.slot))
            if sil is not None:
                relevant |= np.isin(slots, np.asarray(sil.slot))
            count = getattr(closed, "count", None)
            if count is not None:
                relevant &= np.asarray(count) > 0
            keep = np.flatnonzero(relevant)
            times.append(np.asarray(closed.end_us, np.int64)[keep])
            kinds.append(np.full(len(keep), _WINDOW, np.int8))
            rows.append(keep)

        if not times:
            return cl.changes
        t = np.concatenate(times)
        if not len(t):
            return cl.changes
        k = np.concatenate(kinds)
        r = np.concatenate(rows)
        self.event_now_us = max(self.event_now_us, int(t.max()))
        grouped = self._silence_groups(det, d_sensor, sil, rows, kinds)
        for i in np.lexsort((k, t)).tolist():
            kind, row = int(k[i]), int(r[i])
            if kind == _DETECTION:
                assert det is not None and d_series is not None and d_sensor is not None and d_metric is not None
                name = det.names[int(det.detector[row])]
                sev = det.severity[row] if det.severity is not None else None
                group = det.group[row] if (name == SILENCE and det.group is not None) else ""
                if group in grouped:
                    self._trigger_source(cl, group, int(d_series[row]), int(det.ts_us[row]), float(det.value[row]),
                                         float(det.score[row]), sev)
                else:
                    self._trigger(cl, int(d_series[row]), d_sensor[row], d_metric[row], name,
                                  int(det.ts_us[row]), float(det.value[row]), float(det.score[row]), sev)
            elif kind == _SILENCE:
                assert sil is not None and s_series is not None
                sensor, metric = self.slots.sensor_metric(int(sil.slot[row]))
                sev = getattr(sil, "severity", None)  # optional per-row severity of the silence detector
                groups = getattr(sil, "group", None)
                group = groups[row] if groups is not None else ""
                if group in grouped:
                    self._trigger_source(cl, group, int(s_series[row]), int(sil.last_ts_us[row]),
                                         float(sil.gap_us[row]) / 1e6, float(sil.score[row]),
                                         sev[row] if sev is not None else None)
                else:
                    self._trigger(cl, int(s_series[row]), sensor, metric, SILENCE, int(sil.last_ts_us[row]),
                                  float(sil.gap_us[row]) / 1e6, float(sil.score[row]),
                                  sev[row] if sev is not None else None)
            else:
                assert closed is not None
                self._window_closed(cl, int(closed.slot[row]), int(closed.start_us[row]), int(closed.end_us[row]))
        self._prune_resolved()
        return cl.changes

    def _silence_groups(self, det: Detections | None, d_sensor: list[str] | None, sil: SilencesLike | None,
                        rows: list[np.ndarray], kinds: list[np.ndarray]) -> set[str]:
        """Sources whose silence in this batch is one incident: at least ``silence_group_min``
        distinct *sensors* of the source silent (reported by the live check or by the first reading
        after a gap), or the source's incident already open. Sensors, not series: one station
        with six metrics going quiet is that station's silence, not its whole source's."""
        need = self.settings.silence_group_min
        if need <= 0:
            return set()
        sensors_by_group: dict[str, set[str]] = {}
        for keep, kind in zip(rows, kinds):
            if not len(keep):
                continue
            if kind[0] == _DETECTION and det is not None and det.group is not None and d_sensor is not None:
                silence = det.names.index(SILENCE) if SILENCE in det.names else -1
                for row in keep.tolist():
                    if int(det.detector[row]) == silence and det.group[row]:
                        sensors_by_group.setdefault(det.group[row], set()).add(d_sensor[row])
            elif kind[0] == _SILENCE and sil is not None:
                groups = getattr(sil, "group", None)
                if groups is None:
                    continue
                for row in keep.tolist():
                    if groups[row]:
                        sensor, _ = self.slots.sensor_metric(int(sil.slot[row]))
                        sensors_by_group.setdefault(groups[row], set()).add(sensor)
        return {g for g, members in sensors_by_group.items()
                if len(members) >= need or (source_series_id(g), SILENCE) in self._open}

    def _trigger_source(self, cl: _ChangeLog, source: str, series_id: int, ts: int, value: float, score: float,
                        severity: str | None) -> None:
        """A series' silence, as a trigger of its source's one incident (opened, re-opened or updated
        like any alert; one trigger per silent series and gap: the same gap reported again by the
        next check is not a new trigger)."""
        group_id = source_series_id(source)
        known = self._member_of.get(series_id)
        if known is not None and known[0] == group_id and ts <= known[1]:
            return  # this series' gap was already counted
        self._member_of[series_id] = (group_id, ts)
        a = self._open.get((group_id, SILENCE))
        if a is None:
            self._trigger(cl, group_id, source_sensor_id(source), GROUP_METRIC, SILENCE, ts, value, score, severity)
            return
        # several series of the source report the same quiet spell: each is a trigger of the incident
        self._add_trigger(a, max(ts, a.last_triggered_at_us), value, score,
                          severity or self.settings.severity_for(SILENCE))
        cl.record(a, "updated")

    def _resolve_series(self, det: Detections) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
        slots = np.asarray(det.slot, np.int64)
        held = self.slots.series(slots).astype(np.int64)
        series = np.asarray(det.series_id, np.int64) if det.series_id is not None else held
        if det.sensor_id is None or det.metric is None:
            sm_s, sm_m = self._sensor_metric(slots)
        sensors = list(det.sensor_id) if det.sensor_id is not None else sm_s
        metrics = list(det.metric) if det.metric is not None else sm_m
        if det.series_id is not None:
            # learn slots the caller did not assign, so their windows can resolve the alerts
            fresh = np.flatnonzero((held < 0) & (series >= 0))
            if len(fresh):
                first = {int(slots[i]): i for i in fresh.tolist()}
                self.assign(list(first), [int(series[i]) for i in first.values()],
                            [sensors[i] for i in first.values()], [metrics[i] for i in first.values()])
        return series, sensors, metrics, series >= 0

    # -- transitions -----------------------------------------------------------------------

    def _trigger(self, cl: _ChangeLog, series_id: int, sensor: str, metric: str, detector: str, ts: int,
                 value: float, score: float, severity: str | None) -> None:
        key = (series_id, detector)
        sev = severity or self.settings.severity_for(detector)
        a = self._open.get(key)
        if a is not None:
            if ts <= a.last_triggered_at_us:
                return  # a redelivered reading, or the same silent gap reported again
            self._add_trigger(a, ts, value, score, sev)
            cl.record(a, "updated")
            return
        r = self._resolved.get(key)
        if r is not None and ts <= r.last_triggered_at_us:
            return
        if r is not None and ts - r.last_triggered_at_us <= self._flap_us:
            del self._resolved[key]
            r.state = "open"
            r.reopen_count += 1
            r.acknowledged_at = r.acknowledged_by = None
            r.resolved_at_us = r.resolved_by = None
            r.sensor_id, r.metric = sensor or r.sensor_id, metric or r.metric
            self._add_trigger(r, ts, value, score, sev)
            r.reopen_times = [x for x in r.reopen_times if ts - x <= self._flap_us] + [ts]
            self._add_open(r)
            became_flapping = not r.flapping and len(r.reopen_times) >= self.settings.flap_threshold
            r.flapping = r.flapping or became_flapping  # before recording: this re-open is not notified
            cl.record(r, "reopened")
            if became_flapping:
                cl.record(r, "flapping")
            return
        self._resolved.pop(key, None)
        a = Alert(series_id=series_id, sensor_id=sensor, metric=metric, detector=detector, severity=sev,
                  opened_at_us=ts, last_triggered_at_us=ts, max_score=score, triggers=[Trigger(ts, value, score)])
        self._add_open(a)
        cl.record(a, "opened")

    def _add_trigger(self, a: Alert, ts: int, value: float, score: float, severity: str) -> None:
        a.trigger_count += 1
        a.last_triggered_at_us = ts
        if score > a.max_score:
            a.max_score = score
        a.severity = max_severity(a.severity, severity)
        a.triggers.append(Trigger(ts, value, score))
        if len(a.triggers) > self.settings.max_triggers:
            del a.triggers[: len(a.triggers) - self.settings.max_triggers]
        a.normal_windows = 0

    def _window_closed(self, cl: _ChangeLog, slot: int, start_us: int, end_us: int) -> None:
        series = int(self.slots.series(np.array([slot]))[0])
        alerts = list(self._by_series.get(series, {}).values())
        member = self._member_of.get(series)
        if member is not None:  # the source's incident: any member's normal windows count
            incident = self._open.get((member[0], SILENCE))
            if incident is None:
                del self._member_of[series]
            else:
                alerts.append(incident)
        if not alerts:
            return
        for a in alerts:
            if start_us <= a.last_triggered_at_us:
                continue
            a.normal_windows += 1
            if a.normal_windows >= self.settings.resolve_after_windows:
                a.state = "resolved"
                a.resolved_at_us = end_us
                a.resolved_by = "auto"
                self._remove_open(a)
                self._resolved[(a.series_id, a.detector)] = a
                cl.record(a, "resolved")

    def _add_open(self, a: Alert) -> None:
        self._open[(a.series_id, a.detector)] = a
        self._by_series.setdefault(a.series_id, {})[a.detector] = a

    def _remove_open(self, a: Alert) -> None:
        self._open.pop((a.series_id, a.detector), None)
        per = self._by_series.get(a.series_id)
        if per is not None:
            per.pop(a.detector, None)
            if not per:
                del self._by_series[a.series_id]

    def _prune_resolved(self) -> None:
        if len(self._resolved) < 1024:
            return
        horizon = self.event_now_us - self._flap_us
        for key in [k for k, a in self._resolved.items() if a.last_triggered_at_us < horizon]:
            del self._resolved[key]

    # -- changes made elsewhere (API, other workers) ---------------------------------------

    def observe_stored(self, row: Any) -> None:
        """Take a state change found in the database (an API ack/resolve, possibly by another
        worker) into memory. Only moves an alert forward within the same incarnation: a stale
        row never undoes a re-open this manager already decided."""
        key = (row["series_id"], row["detector"])
        opened = dt_to_us(row["opened_at"])
        a = self._open.get(key)
        if a is None or a.opened_at_us != opened:
            r = self._resolved.get(key)
            if r is not None and r.opened_at_us == opened and row["reopen_count"] == r.reopen_count:
                r.note = row["note"]
            return
        if row["reopen_count"] != a.reopen_count or STATE_RANK[row["state"]] < STATE_RANK[a.state]:
            return
        a.acknowledged_at, a.acknowledged_by = row["acknowledged_at"], row["acknowledged_by"]
        a.note = row["note"]
        if row["state"] == "resolved":
            a.state = "resolved"
            a.resolved_at_us = dt_to_us(row["resolved_at"])
            a.resolved_by = row["resolved_by"]
            self._remove_open(a)
            self._resolved[key] = a
        else:
            a.state = row["state"]

    def adopt(self, opened_at_us: int, stored: Alert) -> None:
        """The database already holds an open alert for this series and detector (opened by
        another worker, or before a restart without restore): the alert this manager opened at
        ``opened_at_us`` becomes that one, with the stored triggers added to its own."""
        a = self._open.get((stored.series_id, stored.detector))
        if a is None or a.opened_at_us != opened_at_us:
            return
        a.opened_at_us = stored.opened_at_us
        a.reopen_count = stored.reopen_count
        a.flapping = a.flapping or stored.flapping
        a.trigger_count += stored.trigger_count
        a.max_score = max(a.max_score, stored.max_score)
        a.triggers = [*stored.triggers, *a.triggers][-self.settings.max_triggers:]
        if STATE_RANK[stored.state] > STATE_RANK[a.state]:
            a.state = stored.state
            a.acknowledged_at, a.acknowledged_by = stored.acknowledged_at, stored.acknowledged_by
        a.note = a.note or stored.note

    # -- inspection ------------------------------------------------------------------------

    def open_alerts(self) -> list[Alert]:
        """Open and acknowledged alerts (for tests and the health endpoint)."""
        return list(self._open.values())

    def get_open(self, series_id: int, detector: str) -> Alert | None:
        return self._open.get((series_id, detector))
