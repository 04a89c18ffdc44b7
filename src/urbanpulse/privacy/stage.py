"""The privacy stage of the pipeline: runs on decoded columns before validation (docs/privacy.md).

Only messages whose data class (by topic, else by source) has an active policy are touched; a
pipeline without any such class has no stage at all, so other sources' hot path is unchanged.
Everything is batch-shaped: pseudonyms are computed once per distinct (period, id), positions
are rounded with numpy, and quarantine rows of personal messages are redacted before they leave
the stage, so a raw id never reaches a table, a log line, a metric label, an alert or a webhook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import orjson

from urbanpulse.errors import ConfigError
from urbanpulse.formats.base import Decoded, MessageBatch
from urbanpulse.formats.router import topic_matches
from urbanpulse.model import ReadingColumns, Rejection
from urbanpulse.privacy.pseudonyms import Pseudonymiser, load_key
from urbanpulse.privacy.settings import ClassPolicy, PrivacySettings

#: payload of a quarantined message of a redacted class: none of its bytes are kept
REDACTED_MESSAGE = b'{"redacted":true}'


@dataclass
class Scope:
    """The policies that apply to one batch: per message, None where none is active."""

    msg_policy: list[ClassPolicy | None]
    #: redacted payloads this stage built for validation (id of the bytes object)
    made: set[int] = field(default_factory=set)

    def groups(self) -> list[tuple[ClassPolicy, np.ndarray | None]]:
        """(policy, message mask or None for every message) for each active policy in the batch."""
        distinct = {id(p): p for p in self.msg_policy if p is not None}
        if len(distinct) == 1 and all(p is not None for p in self.msg_policy):
            return [(next(iter(distinct.values())), None)]
        return [(p, np.array([q is p for q in self.msg_policy], dtype=bool)) for p in distinct.values()]


class PrivacyStage:
    """Applies the class policies of ``privacy:`` to decoded readings and their rejections."""

    def __init__(self, settings: PrivacySettings, pseudonymiser: Pseudonymiser | None) -> None:
        self.settings = settings
        self.pseudonymiser = pseudonymiser
        self._active = {c: p for c, p in settings.policies.items() if p.active}
        self._topic_rules = list(settings.topics.items())
        self._topic_cache: dict[str, tuple[ClassPolicy | None, str | None]] = {}

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

    def scope(self, batch: MessageBatch) -> Scope | None:
        """The policies of ``batch``'s messages; None when none applies (the common case)."""
        n = len(batch.payloads)
        if not self._topic_rules or batch.topics is None:
            p = self._active.get(self.settings.sources.get(batch.source, "open"))
            return None if p is None else Scope([p] * n)
        policies = [self._of_topic(batch.source, t)[0] for t in batch.topics]
        return Scope(policies) if any(p is not None for p in policies) else None

    # -- before validation ----------------------------------------------------------------

    def apply(self, batch: MessageBatch, decoded: Decoded, scope: Scope) -> None:
        """Pseudonymise, drop fields, coarsen and turn value-less fixes into position readings, in place."""
        cols = decoded.columns
        if not len(cols):
            return
        for policy, msg_mask in scope.groups():
            sel = None if msg_mask is None else msg_mask[cols.msg]
            if sel is not None and not sel.any():
                continue
            self._apply_policy(policy, cols, sel)

    def _apply_policy(self, p: ClassPolicy, cols: ReadingColumns, sel: np.ndarray | None) -> None:
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
            if everything:
                cols.sensor_id = self.pseudonymiser.apply(cols.sensor_id, cols.ts_us)
            else:
                idx = np.flatnonzero(mask)
                ids = cols.sensor_id
                new = self.pseudonymiser.apply([ids[k] for k in idx.tolist()], cols.ts_us[idx])
                for k, s in zip(idx.tolist(), new):
                    ids[k] = s
        if not keeps_location:
            cols.lat = np.where(mask, np.nan, cols.lat)
            cols.lon = np.where(mask, np.nan, cols.lon)
        elif p.location_decimals is not None:
            cols.lat, cols.lon = coarsen(cols.lat, cols.lon, p.location_decimals, None if everything else mask)
        if "unit" in p.drop_fields:
            for k in (range(n) if everything else np.flatnonzero(mask).tolist()):
                cols.unit[k] = None

    def raw_of(self, scope: Scope, cols: ReadingColumns, raw_of: Callable[[int], bytes]) -> Callable[[int], bytes]:
        """What validation quarantines for reading ``k``: as received, or for a redacted class only
        what the class keeps (pseudonym, metric, time, value, coarsened position)."""
        def redacted_raw_of(k: int) -> bytes:
            p = scope.msg_policy[int(cols.msg[k])]
            if p is None or not _redacts(p):
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


def _redacts(p: ClassPolicy) -> bool:
    return p.pseudonymise or p.quarantine_payload == "redact"


def coarsen(lat: np.ndarray, lon: np.ndarray, decimals: int,
            mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Positions rounded to ``decimals`` decimal degrees (where ``mask``), vectorised."""
    rlat, rlon = np.round(lat, decimals), np.round(lon, decimals)
    if mask is None:
        return rlat, rlon
    return np.where(mask, rlat, lat), np.where(mask, rlon, lon)


def build_privacy_stage(settings: PrivacySettings) -> PrivacyStage | None:
    """The stage for this configuration, or None when no source or topic has an active class.

    Refuses (:class:`ConfigError`) a configuration that uses the personal class, or any class
    that pseudonymises, without a key."""
    used = settings.classes_in_use()
    active = {c for c, p in settings.policies.items() if p.active} & used
    needs_key = "personal" in used or any(settings.policies[c].pseudonymise for c in active)
    key = load_key(settings.key_file, settings.key_env) if (needs_key or settings.key_file) else None
    if needs_key and key is None:
        users = sorted([f"source {s}" for s, c in settings.sources.items() if c == "personal"]
                       + [f"topic {t}" for t, c in settings.topics.items() if c == "personal"])
        raise ConfigError(
            f"privacy: {', '.join(users) or 'a pseudonymised class'} is personal data, and personal device ids are "
            f"stored only as keyed pseudonyms, but there is no key: set privacy.key_file to a file holding it, or "
            f"the environment variable {settings.key_env} (at least 16 bytes, e.g. `openssl rand -hex 32`); keep it "
            "outside the database and its backups (docs/privacy.md)")
    if not active:
        return None
    return PrivacyStage(settings, Pseudonymiser(key, settings.rotation) if key is not None else None)
