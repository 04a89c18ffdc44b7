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
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from urbanpulse.alerts.inputs import ClosedWindowsLike, Detections, SilencesLike
from urbanpulse.alerts.maintenance import MaintenanceCalendar, MaintenanceWindow
from urbanpulse.alerts.model import (STATE_RANK, Alert, AlertChanges, PendingEvent, Trigger, alert_from_row,
                                     dt_to_us, max_severity)
from urbanpulse.alerts.settings import AlertSettings
from urbanpulse.capacity import grown

log = logging.getLogger(__name__)

SILENCE = "silence"
_NO_TIME = np.iinfo(np.int64).min
# merge order at equal event time: a window ending at t closes before a reading at t is judged
_WINDOW, _DETECTION, _SILENCE = 0, 1, 2

_LOAD_SQL = """
SELECT * FROM alerts WHERE state <> 'resolved'
UNION ALL
SELECT * FROM (
    SELECT DISTINCT ON (series_id, detector) * FROM alerts
    WHERE state = 'resolved'
      AND (updated_at >= now() - $1::interval
           OR last_triggered_at >= (SELECT max(last_triggered_at) FROM alerts) - $1::interval)
    ORDER BY series_id, detector, opened_at DESC) recent
"""


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
    """In-memory authority for the open alerts of the series this process owns."""

    def __init__(self, settings: AlertSettings | None = None) -> None:
        self.settings = settings or AlertSettings()
        self._open: dict[tuple[int, str], Alert] = {}
        self._by_series: dict[int, dict[str, Alert]] = {}
        self._resolved: dict[tuple[int, str], Alert] = {}  # latest resolved per key, for re-opening
        self._slot_series = np.full(0, -1, np.int32)
        self._has_alert = np.zeros(0, bool)
        self._slot_sensor: list[str | None] = []
        self._slot_metric: list[str | None] = []
        #: by series id: the slot holding it (-1: none). An array, not a dict: a dict entry with its
        #: two int objects costs ~100 bytes per series, this 4 (benchmarks/README.md, memory per series)
        self._series_slot = np.full(0, -1, np.int32)
        self._config_windows = [MaintenanceWindow.from_settings(w) for w in self.settings.maintenance]
        self.maintenance = MaintenanceCalendar(self._config_windows)
        self.event_now_us: int = int(_NO_TIME)
        self.muted_total = 0
        self._flap_us = int(self.settings.flap_window.total_seconds() * 1_000_000)

    # -- slots -----------------------------------------------------------------------------

    def ensure_capacity(self, n_slots: int) -> None:
        """Grow the per-slot arrays (by a quarter, capacity.py) to hold at least ``n_slots``."""
        cap = len(self._slot_series)
        if n_slots <= cap:
            return
        new = grown(n_slots, cap)
        self._slot_series = np.concatenate([self._slot_series, np.full(new - cap, -1, np.int32)])
        self._has_alert = np.concatenate([self._has_alert, np.zeros(new - cap, bool)])
        self._slot_sensor.extend([None] * (new - cap))
        self._slot_metric.extend([None] * (new - cap))

    def assign(self, slots: Sequence[int] | np.ndarray, series_ids: Sequence[int] | np.ndarray,
               sensor_ids: Sequence[str], metrics: Sequence[str]) -> None:
        """Tell the manager which series a slot now holds (call with ``DetectorBank.assign``).

        Closed windows and silences arrive by slot; this is how they find their alerts."""
        slots = np.asarray(slots, np.int64)
        if len(slots):
            self.ensure_capacity(int(slots.max()) + 1)
        ids = np.asarray(series_ids, np.int64)
        if len(ids) and int(ids.max()) >= len(self._series_slot):
            n = len(self._series_slot)
            self._series_slot = np.concatenate([self._series_slot,
                                                np.full(grown(int(ids.max()) + 1, n) - n, -1, np.int32)])
        for s, sid, sensor, metric in zip(slots.tolist(), ids.tolist(), sensor_ids, metrics):
            old = int(self._slot_series[s])
            if old >= 0 and self._slot_of(old) == s:
                self._series_slot[old] = -1
            self._slot_series[s] = sid
            self._slot_sensor[s] = sensor
            self._slot_metric[s] = metric
            self._series_slot[sid] = s
            self._has_alert[s] = bool(self._by_series.get(sid))

    def _slot_of(self, series_id: int) -> int | None:
        """The slot holding this series, if any."""
        if 0 <= series_id < len(self._series_slot):
            slot = int(self._series_slot[series_id])
            return slot if slot >= 0 else None
        return None

    def evict(self, slots: Sequence[int] | np.ndarray) -> None:
        """Forget slots freed by the window state; their open alerts stay (keyed by series)."""
        for s in np.asarray(slots, np.int64).tolist():
            if s >= len(self._slot_series):
                continue
            old = int(self._slot_series[s])
            if old >= 0 and self._slot_of(old) == s:
                self._series_slot[old] = -1
            self._slot_series[s] = -1
            self._has_alert[s] = False
            self._slot_sensor[s] = self._slot_metric[s] = None

    # -- maintenance -----------------------------------------------------------------------

    def set_maintenance(self, stored: Iterable[MaintenanceWindow]) -> None:
        """Replace the stored (API) maintenance windows; the configured ones always apply."""
        self.maintenance.replace([*self._config_windows, *stored])

    # -- restore ---------------------------------------------------------------------------

    async def load_open(self, conn: Any) -> int:
        """Restore open/acknowledged alerts (and recently resolved ones, for re-opening) from the
        database, so a restarted service updates them instead of opening duplicates. Returns the
        number of open/acknowledged alerts restored."""
        rows = await conn.fetch(_LOAD_SQL, self.settings.flap_window)
        self._open.clear()
        self._by_series.clear()
        self._resolved.clear()
        self._has_alert[:] = False
        n = 0
        for row in rows:
            a = alert_from_row(row)
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
            self.ensure_capacity(int(slots.max()) + 1)
            s_series = self._slot_series[slots]
            known = s_series >= 0
            at = np.asarray(sil.last_ts_us, np.int64) + np.asarray(sil.gap_us, np.int64)
            sensors = [self._slot_sensor[s] or "" for s in slots.tolist()]
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
            self.ensure_capacity(int(slots.max()) + 1)
            relevant = self._has_alert[slots].copy()
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
        for i in np.lexsort((k, t)).tolist():
            kind, row = int(k[i]), int(r[i])
            if kind == _DETECTION:
                assert det is not None and d_series is not None and d_sensor is not None and d_metric is not None
                name = det.names[int(det.detector[row])]
                sev = det.severity[row] if det.severity is not None else None
                self._trigger(cl, int(d_series[row]), d_sensor[row], d_metric[row], name,
                              int(det.ts_us[row]), float(det.value[row]), float(det.score[row]), sev)
            elif kind == _SILENCE:
                assert sil is not None and s_series is not None
                slot = int(sil.slot[row])
                sev = getattr(sil, "severity", None)  # optional per-row severity of the silence detector
                self._trigger(cl, int(s_series[row]), self._slot_sensor[slot] or "", self._slot_metric[slot] or "",
                              SILENCE, int(sil.last_ts_us[row]), float(sil.gap_us[row]) / 1e6,
                              float(sil.score[row]), sev[row] if sev is not None else None)
            else:
                assert closed is not None
                self._window_closed(cl, int(closed.slot[row]), int(closed.start_us[row]), int(closed.end_us[row]))
        self._prune_resolved()
        return cl.changes

    def _resolve_series(self, det: Detections) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
        slots = np.asarray(det.slot, np.int64)
        if len(slots):
            self.ensure_capacity(int(slots.max()) + 1)
        series = (np.asarray(det.series_id, np.int64) if det.series_id is not None
                  else self._slot_series[slots].astype(np.int64))
        sensors = list(det.sensor_id) if det.sensor_id is not None else \
            [self._slot_sensor[s] or "" for s in slots.tolist()]
        metrics = list(det.metric) if det.metric is not None else \
            [self._slot_metric[s] or "" for s in slots.tolist()]
        if det.series_id is not None:
            # learn slots the caller did not assign, so their windows can resolve the alerts
            fresh = np.flatnonzero((self._slot_series[slots] < 0) & (series >= 0))
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
        series = int(self._slot_series[slot])
        alerts = self._by_series.get(series)
        if not alerts:
            return
        for a in list(alerts.values()):
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
        slot = self._slot_of(a.series_id)
        if slot is not None:
            self._has_alert[slot] = True

    def _remove_open(self, a: Alert) -> None:
        self._open.pop((a.series_id, a.detector), None)
        per = self._by_series.get(a.series_id)
        if per is not None:
            per.pop(a.detector, None)
            if not per:
                del self._by_series[a.series_id]
                slot = self._slot_of(a.series_id)
                if slot is not None:
                    self._has_alert[slot] = False

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
        another worker, or before a restart without load_open): the alert this manager opened at
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
