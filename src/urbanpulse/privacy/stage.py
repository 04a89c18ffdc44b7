"""The privacy stage of the pipeline: runs on decoded columns before validation (docs/privacy.md).

Validation still decides on what was sent: the stage marks the positions that were invalid before
it coarsened or dropped them (``Scope.bad_location``), the ids that were invalid before it
pseudonymised them (``Scope.bad_sensor_id``) and keeps the units it dropped for the unit check
(``Scope.units_as_sent``), so a personal reading is accepted or rejected exactly as the same reading
from an open source, and only the coarsened position, the pseudonym and no unit are stored.

Only messages whose data class (by topic, else by source) has an active policy are touched; a
pipeline without any such class has no stage at all, so other sources' hot path is unchanged.
Everything is batch-shaped: pseudonyms are computed once per distinct (period, id), positions
are rounded with numpy, and quarantine rows of personal messages are redacted before they leave
the stage, so a raw id never reaches a table, a log line, a metric label, an alert or a webhook.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import orjson

from urbanpulse.errors import ConfigError
from urbanpulse.formats.base import Decoded, MessageBatch
from urbanpulse.formats.router import topic_matches
from urbanpulse.model import ReadingColumns, Rejection
from urbanpulse.privacy.pseudonyms import Pseudonymiser, load_key
from urbanpulse.privacy.settings import CLASS_RANK, ClassPolicy, PrivacySettings
from urbanpulse.quality.validate import bad_positions, sensor_id_fault

#: payload of a quarantined message of a redacted class: none of its bytes are kept
REDACTED_MESSAGE = b'{"redacted":true}'


@dataclass
class Scope:
    """The policies that apply to one batch: per message, None where none is active."""

    msg_policy: list[ClassPolicy | None]
    #: redacted payloads this stage built for validation (id of the bytes object)
    made: set[int] = field(default_factory=set)
    #: registered sensors whose registry class is stricter than their message's: sensor id -> policy
    #: (applied without pseudonymisation: a registered id is in the registry already)
    by_sensor: dict[str, ClassPolicy] = field(default_factory=dict)
    #: readings whose position was invalid as sent, before :meth:`PrivacyStage.apply` coarsened or
    #: dropped it (None: none): validation rejects them as an open source's would be
    bad_location: np.ndarray | None = None
    #: per reading, the ``sensor_id_fault`` of its id as sent, before :meth:`PrivacyStage.apply`
    #: pseudonymised it (None: none invalid): " phone\x07 " must not become a valid ``psn-...``
    bad_sensor_id: np.ndarray | None = None
    #: reading -> its unit as sent, where ``drop_fields: [unit]`` dropped it: validation judges the
    #: unit (``furlongs`` for temperature is ``unit_mismatch``), storage never sees it
    units_as_sent: dict[int, str] = field(default_factory=dict)

    def groups(self) -> list[tuple[ClassPolicy, np.ndarray | None]]:
        """(policy, message mask or None for every message) for each active policy in the batch."""
        distinct = {id(p): p for p in self.msg_policy if p is not None}
        if len(distinct) == 1 and all(p is not None for p in self.msg_policy):
            return [(next(iter(distinct.values())), None)]
        return [(p, np.array([q is p for q in self.msg_policy], dtype=bool)) for p in distinct.values()]


class PrivacyStage:
    """Applies the class policies of ``privacy:`` to decoded readings and their rejections."""

    def __init__(self, settings: PrivacySettings, pseudonymiser: Pseudonymiser | None,
                 registry_classes: Callable[[], Mapping[str, str]] | None = None) -> None:
        self.settings = settings
        self.pseudonymiser = pseudonymiser
        # every class some source or topic is given is "in scope" (even with nothing to do at ingest):
        # its new series are recorded with their class (series.data_class) for retention and open data
        self._active = {c: p for c, p in settings.policies.items() if p.active}
        for c in settings.classes_in_use() - {"open"}:
            self._active.setdefault(c, ClassPolicy())  # type: ignore[index]
        self._class_name = {id(p): c for c, p in self._active.items()}
        self._topic_rules = list(settings.topics.items())
        self._topic_cache: dict[str, tuple[ClassPolicy | None, str | None]] = {}
        #: sensor id -> class of registered sensors whose class has an active policy (RegisteredSensors)
        self._registry_classes = registry_classes
        self._registry_policies = {c: p.model_copy(update={"pseudonymise": False})
                                   for c, p in settings.policies.items() if p.active}
        #: sensor ids (pseudonyms) of classed messages seen lately -> class: what a new series is
        #: registered with (storage/series.py); bounded, newest kept
        self.series_classes: dict[str, str] = {}
        self.series_classes_max = 1_000_000

    def class_of_sensor(self, sensor_id: str) -> str | None:
        """The class a new series of ``sensor_id`` is recorded with (None: open)."""
        return self.series_classes.get(sensor_id)

    def _remember(self, ids: object, cls: str) -> None:
        known = self.series_classes
        new = set(ids).difference(known)  # type: ignore[call-overload]
        if not new:
            return
        if len(known) + len(new) > self.series_classes_max:
            for k in list(known)[: len(known) // 2]:  # the oldest half
                del known[k]
        known.update(dict.fromkeys(new, cls))

    # -- which policy applies ------------------------------------------------------------

    def _of_topic(self, source: str, topic: str | None) -> tuple[ClassPolicy | None, str | None]:
        """The active policy of a message and the topic filter that decided it (None: by source)."""
        if topic is not None and self._topic_rules:
            hit = self._topic_cache.get(topic)
            if hit is None:
                hit = (None, None)
                for flt, cls in self._topic_rules:
                    if topic_matches(flt, topic):
                        hit = (self._active.get(cls), flt)
                        break
                if len(self._topic_cache) > 10_000:
                    self._topic_cache.clear()
                self._topic_cache[topic] = hit
            if hit[1] is not None:
                return hit
        return self._active.get(self.settings.sources.get(source, "open")), None

    def scope(self, batch: MessageBatch, cols: ReadingColumns | None = None) -> Scope | None:
        """The policies of ``batch``'s messages, and (given its decoded ``cols``) of registered
        sensors whose registry class is stricter; None when none applies (the common case)."""
        n = len(batch.payloads)
        if not self._topic_rules or batch.topics is None:
            p = self._active.get(self.settings.sources.get(batch.source, "open"))
            scope = None if p is None else Scope([p] * n)
        else:
            policies = [self._of_topic(batch.source, t)[0] for t in batch.topics]
            scope = Scope(policies) if any(p is not None for p in policies) else None
        if cols is not None and self._registry_classes is not None:
            scope = self._registry_scope(cols, scope, n)
        return scope

    def _registry_scope(self, cols: ReadingColumns, scope: Scope | None, n: int) -> Scope | None:
        """Add the registered sensors of ``cols`` whose registry class is stricter than their message's."""
        classes = self._registry_classes()  # type: ignore[misc]
        if not classes or not len(cols):
            return scope
        hits = set(cols.sensor_id).intersection(classes)
        if not hits:
            return scope
        by_sensor = {s: self._registry_policies[c] for s in hits if (c := classes[s]) in self._registry_policies}
        if not by_sensor:
            return scope
        scope = scope or Scope([None] * n)
        scope.by_sensor = by_sensor
        return scope

    # -- before validation ----------------------------------------------------------------

    def apply(self, batch: MessageBatch, decoded: Decoded, scope: Scope) -> None:
        """Pseudonymise, drop fields, coarsen and turn value-less fixes into position readings, in place."""
        cols = decoded.columns
        if not len(cols):
            return
        n = len(cols)
        registry: list[tuple[ClassPolicy, np.ndarray]] = []
        override = None  # readings whose registry class is stricter than their message's: that policy only
        if scope.by_sensor:  # before pseudonymisation changes the ids
            ranks = self._msg_ranks(scope, cols)
            for policy in {id(p): p for p in scope.by_sensor.values()}.values():
                cls = next(c for c, p in self._registry_policies.items() if p is policy)
                sel = np.fromiter((scope.by_sensor.get(s) is policy for s in cols.sensor_id), bool, n) \
                    & (ranks < CLASS_RANK[cls])
                if sel.any():
                    registry.append((policy, sel))
                    override = sel if override is None else override | sel
        for policy, msg_mask in scope.groups():
            sel = None if msg_mask is None else msg_mask[cols.msg]
            if override is not None:
                sel = ~override if sel is None else sel & ~override
            if sel is not None and not sel.any():
                continue
            self._apply_policy(policy, cols, sel, scope)
            cls = self._class_name.get(id(policy))
            if cls is not None:
                self._remember(cols.sensor_id if sel is None else [cols.sensor_id[k] for k in np.flatnonzero(sel)], cls)
        for policy, sel in registry:
            self._apply_policy(policy, cols, sel, scope)

    def _msg_ranks(self, scope: Scope, cols: ReadingColumns) -> np.ndarray:
        """Per reading, the rank of its message's class (0: open)."""
        per_msg = np.array([CLASS_RANK[self._class_name.get(id(p), "open")] if p is not None else 0
                            for p in scope.msg_policy] or [0], dtype=np.int8)
        return per_msg[cols.msg] if len(scope.msg_policy) else np.zeros(len(cols), np.int8)

    def _apply_policy(self, p: ClassPolicy, cols: ReadingColumns, sel: np.ndarray | None, scope: Scope) -> None:
        n = len(cols)
        everything = sel is None
        mask = np.ones(n, bool) if sel is None else sel
        keeps_location = "location" not in p.drop_fields
        if p.position_readings and keeps_location and len(cols.has_null_value) == n and cols.has_null_value.any():
            fix = mask & cols.has_null_value & ~np.isnan(cols.lat) & ~np.isnan(cols.lon)
            if fix.any():
                idx = np.flatnonzero(fix)
                metric = self.settings.position_metric
                for k in idx.tolist():
                    cols.metric[k] = metric
                    cols.unit[k] = None
                cols.value = np.where(fix, 1.0, cols.value)
                cols.has_null_value = cols.has_null_value & ~fix
        if p.pseudonymise:
            assert self.pseudonymiser is not None  # build_privacy_stage refuses this without a key
            _mark_bad_ids(cols.sensor_id, mask, everything, scope)
            if everything:
                cols.sensor_id = self.pseudonymiser.apply(cols.sensor_id, cols.ts_us)
            else:
                idx = np.flatnonzero(mask)
                ids = cols.sensor_id
                new = self.pseudonymiser.apply([ids[k] for k in idx.tolist()], cols.ts_us[idx])
                for k, s in zip(idx.tolist(), new):
                    ids[k] = s
        if not keeps_location or p.grid is not None:  # judged as sent: 90.0004 must not round to a valid 90.0
            bad = bad_positions(cols.lat, cols.lon) & mask
            if bad.any():
                scope.bad_location = bad if scope.bad_location is None else scope.bad_location | bad
        if not keeps_location:
            cols.lat = np.where(mask, np.nan, cols.lat)
            cols.lon = np.where(mask, np.nan, cols.lon)
        elif (grid := p.grid) is not None:
            rlat, rlon = grid.snap(cols.lat, cols.lon)
            cols.lat, cols.lon = (rlat, rlon) if everything else (np.where(mask, rlat, cols.lat),
                                                                 np.where(mask, rlon, cols.lon))
        if "unit" in p.drop_fields:  # judged as sent (Scope.units_as_sent), stored without
            units, sent = cols.unit, scope.units_as_sent
            for k in (range(n) if everything else np.flatnonzero(mask).tolist()):
                u = units[k]
                if u is not None:
                    sent[k] = u
                    units[k] = None

    @staticmethod
    def _redacting_policy(scope: Scope, cols: ReadingColumns, k: int) -> ClassPolicy | None:
        """The policy that redacts reading ``k``'s quarantine row (its message's, else its
        registry class's), or None when its row is kept as received."""
        p = scope.msg_policy[int(cols.msg[k])]
        if scope.by_sensor and (q := scope.by_sensor.get(cols.sensor_id[k])) is not None \
                and (p is None or not _redacts(p)):
            p = q
        return p if p is not None and _redacts(p) else None

    def withholds_reading(self, scope: Scope, cols: ReadingColumns) -> Callable[[int], bool]:
        """Whether validation must word reading ``k``'s rejection detail without what it carries
        (value, unit, sensor id): its quarantine row is redacted, and a detail quoting the value
        would put back in clear text what the redacted payload is the only place for."""
        return lambda k: self._redacting_policy(scope, cols, k) is not None

    def raw_of(self, scope: Scope, cols: ReadingColumns, raw_of: Callable[[int], bytes]) -> Callable[[int], bytes]:
        """What validation quarantines for reading ``k``: as received, or for a redacted class only
        what the class keeps (pseudonym, metric, time, value, coarsened position)."""

        def redacted_raw_of(k: int) -> bytes:
            if self._redacting_policy(scope, cols, k) is None:
                return raw_of(k)
            value, lat, lon = float(cols.value[k]), float(cols.lat[k]), float(cols.lon[k])
            out = orjson.dumps({
                "redacted": True, "sensor_id": cols.sensor_id[k], "metric": cols.metric[k],
                "ts_us": float(cols.ts_us[k]) if np.isfinite(cols.ts_us[k]) else None,
                "value": value if np.isfinite(value) else None,
                "lat": lat if np.isfinite(lat) else None, "lon": lon if np.isfinite(lon) else None})
            scope.made.add(id(out))
            return out
        return redacted_raw_of

    # -- after validation -----------------------------------------------------------------

    def drop_metrics(self, scope: Scope, readings: ReadingColumns) -> ReadingColumns:
        """Readings of metrics their class never stores, removed."""
        drop = None
        for policy, msg_mask in scope.groups():
            if not policy.drop_metrics or not len(readings):
                continue
            gone = np.isin(np.array(readings.metric, dtype=object), policy.drop_metrics)
            if msg_mask is not None:
                gone &= msg_mask[readings.msg]
            drop = gone if drop is None else drop | gone
        for sensor, policy in scope.by_sensor.items():
            if policy.drop_metrics and len(readings):
                gone = np.isin(np.array(readings.metric, dtype=object), policy.drop_metrics) & \
                    np.fromiter((s == sensor for s in readings.sensor_id), bool, len(readings))
                drop = gone if drop is None else drop | gone
        return readings if drop is None or not drop.any() else readings.take(~drop)

    def scrub(self, source: str, rejections: list[Rejection], scope: Scope | None = None) -> None:
        """Quarantine rows of redacted classes keep none of the message: its bytes, the detail
        (an error text may quote the input) and the topic (it may name the device) are replaced.
        Items whose redacted payload this stage built (``scope.made``) keep that payload and detail."""
        made = scope.made if scope is not None else set()
        for r in rejections:
            p, flt = self._of_topic(source, r.topic)
            if p is None or not _redacts(p):
                continue
            r.topic = flt
            if id(r.payload) in made:
                continue
            r.payload = REDACTED_MESSAGE
            r.detail = f"{r.reason.value if hasattr(r.reason, 'value') else r.reason}: detail withheld (personal data)"

    def safe_topic(self, source: str, topic: str | None) -> str | None:
        """``topic`` as it may be stored or logged: for a redacted class the filter (or source)
        that made it personal, never the topic itself (it may name the device)."""
        p, flt = self._of_topic(source, topic)
        if p is None or not _redacts(p):
            return topic
        return flt

    def withholds(self, batch: MessageBatch) -> bool:
        """Whether error texts about ``batch`` must stay out of the log (they may quote its ids)."""
        scope = self.scope(batch)
        return scope is not None and any(p is not None and _redacts(p) for p in scope.msg_policy)


def _mark_bad_ids(ids: list[str], mask: np.ndarray, everything: bool, scope: Scope) -> None:
    """Mark in ``scope.bad_sensor_id`` the readings (of ``mask``) whose id is invalid as sent, by
    validation's own predicate, once per distinct id. Nothing is remembered across batches:
    validation's cache of clean ids must not hold raw personal ids (the pseudonymiser's keyed cache
    holds them already, inside the stage, and is the one place)."""
    idx = None if everything else np.flatnonzero(mask).tolist()
    distinct = set(ids) if idx is None else {ids[k] for k in idx}
    faults = {s: f for s in distinct if (f := sensor_id_fault(s))}
    if not faults:
        return
    n = len(ids)
    codes = np.fromiter((faults.get(s, 0) for s in ids), dtype=np.int8, count=n)
    if idx is not None:
        codes[~mask] = 0
    scope.bad_sensor_id = codes if scope.bad_sensor_id is None else np.where(codes != 0, codes, scope.bad_sensor_id)


def _redacts(p: ClassPolicy) -> bool:
    return p.pseudonymise or p.quarantine_payload == "redact"


def coarsen(lat: np.ndarray, lon: np.ndarray, decimals: int,
            mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Positions rounded to ``decimals`` decimal degrees (where ``mask``), vectorised."""
    rlat, rlon = np.round(lat, decimals), np.round(lon, decimals)
    if mask is None:
        return rlat, rlon
    return np.where(mask, rlat, lat), np.where(mask, rlon, lon)


def build_privacy_stage(settings: PrivacySettings,
                        registry_classes: Callable[[], Mapping[str, str]] | None = None) -> PrivacyStage | None:
    """The stage for this configuration, or None when no source or topic has a class other than
    open and no ``registry_classes`` (sensor id -> class of registered sensors; the service passes
    its RegisteredSensors snapshot) are given.

    Refuses (:class:`ConfigError`) a configuration that uses the personal class, or any class
    that pseudonymises, without a key."""
    used = settings.classes_in_use()
    active = ({c for c, p in settings.policies.items() if p.active} | {"restricted", "personal"}) & used
    needs_key = "personal" in used or any(
        (q := settings.policies.get(c)) is not None and q.pseudonymise for c in active)  # type: ignore[call-overload]
    key = load_key(settings.key_file, settings.key_env) if (needs_key or settings.key_file) else None
    if needs_key and key is None:
        users = sorted([f"source {s}" for s, c in settings.sources.items() if c == "personal"]
                       + [f"topic {t}" for t, c in settings.topics.items() if c == "personal"])
        raise ConfigError(
            f"privacy: {', '.join(users) or 'a pseudonymised class'} is personal data, and personal device ids are "
            f"stored only as keyed pseudonyms, but there is no key: set privacy.key_file to a file holding it, or "
            f"the environment variable {settings.key_env} (at least 16 bytes, e.g. `openssl rand -hex 32`); keep it "
            "outside the database and its backups (docs/privacy.md)")
    if not active and registry_classes is None:
        return None
    return PrivacyStage(settings, Pseudonymiser(key, settings.rotation) if key is not None else None, registry_classes)
