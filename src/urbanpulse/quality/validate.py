"""Vectorised validation: every check runs over a whole batch of readings at once.

A reading fails with the first reason in ``_CHECK_ORDER``; it is then quarantined with its raw
JSON, and its neighbours in the same message are unaffected.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import repeat
from operator import is_not
from typing import Protocol

import numpy as np

from urbanpulse.formats.base import Decoded, MessageBatch
from urbanpulse.model import Flag, ReadingColumns, Reason, Rejection
from urbanpulse.plain_duration import plain_duration
from urbanpulse.quality.catalogue import MAX_ABS_VALUE, MIN_ABS_VALUE, MetricCatalogue
from urbanpulse.quality.same_part import PartRun

# Plausible event times: 1900-01-01 .. 2200-01-01 in microseconds since the epoch.
_MIN_TS_US = -2208988800 * 1_000_000
#: validation.min_event_time's default, 2000-01-01T00:00:00Z
MIN_EVENT_TIME_S = 946684800.0
_MAX_TS_US = 7258118400 * 1_000_000
#: validation.max_message_days's default: a year of history per message (a leap year's days)
MAX_MESSAGE_DAYS = 366
_DAY_US = 86_400 * 1_000_000

_CHECK_ORDER = [
    Reason.BAD_SENSOR_ID, Reason.BAD_TIMESTAMP, Reason.MISSING_VALUE, Reason.NON_FINITE,
    Reason.BAD_LOCATION, Reason.UNKNOWN_METRIC, Reason.UNIT_MISMATCH, Reason.OUT_OF_RANGE,
    Reason.FUTURE_TIMESTAMP, Reason.TOO_OLD, Reason.UNKNOWN_SENSOR, Reason.TOO_MANY_DAYS,
]
_CODE = {reason: i + 1 for i, reason in enumerate(_CHECK_ORDER)}

#: the longest sensor id any format may hand on (model.Name's bound, which the canonical format and
#: the sensor registry already apply). Formats that build ids from other fields (SenML's base name,
#: line-protocol tags, CSV columns) had none: a SenML ``bn`` of ~3,000 incompressible characters
#: reached the series table, whose unique index refuses a key over 2,704 bytes
#: (``ProgramLimitExceededError``), and that failure halted the source (benchmarks/README.md ``robust29``)
MAX_SENSOR_ID_CHARS = 128


@dataclass(frozen=True)
class TimeRules:
    """How far event times may stray from the wall clock."""

    max_future_skew_s: float = 300.0
    max_age_s: float | None = 30 * 86400.0
    #: ``validation.min_event_time`` in epoch seconds: earlier readings are too_old even with
    #: max_age_s null (a history import), so one message cannot make storage create a partition
    #: for every month since 1900 (None: only the hard 1900 floor)
    min_event_time_s: float | None = MIN_EVENT_TIME_S
    #: ``validation.max_message_days``: how many distinct UTC days one message's valid readings
    #: may touch; the newest are kept, the readings of older days quarantined ``too_many_days``.
    #: Each day is a TimescaleDB chunk (a month a partition): one message of daily readings
    #: 2000..now made ~9,500 chunks (benchmarks/README.md ``ingest32``). None: no limit
    max_message_days: int | None = MAX_MESSAGE_DAYS


class SensorMembership(Protocol):
    """Which sensors may report (the registry, with ``registry.unregistered: quarantine``)."""

    def unknown_mask(self, sensor_ids: list[str], distinct: set[str] | None = None) -> np.ndarray | None:
        """Boolean mask of readings from unregistered sensors; None when there are none.
        ``distinct`` is ``set(sensor_ids)`` when the caller has it already."""


@dataclass(slots=True)
class Validated:
    """Readings that passed (ts as int64 µs, flags set) and the ones that did not."""

    readings: ReadingColumns
    rejections: list[Rejection]


class ReadingValidator:
    """Applies the catalogue and time rules to decoded readings."""

    #: how many sensor ids found well-formed are remembered (see ``_bad_sensor_ids``); ~100 B each
    clean_ids_limit = 200_000

    def __init__(self, catalogue: MetricCatalogue, rules: TimeRules | None = None,
                 clock: Callable[[], float] = time.time, known_sensors: SensorMembership | None = None) -> None:
        self.catalogue = catalogue
        self.rules = rules or TimeRules()
        self.clock = clock
        self.known_sensors = known_sensors
        self._clean_ids: set[str] = set()

    def _bad_sensor_ids(self, distinct_ids: set[str]) -> set[str]:
        """The ids among ``distinct_ids`` that are empty, longer than ``MAX_SENSOR_ID_CHARS``, or
        have control characters (NUL, lone surrogates, format characters: not printable) or
        surrounding whitespace.

        Ids already found clean are remembered (up to ``clean_ids_limit``, then forgotten all at
        once), so a batch checks only the series it is the first to bring, not each series again."""
        fresh = distinct_ids - self._clean_ids
        if not fresh:
            return set()
        bad = {s for s in fresh if sensor_id_fault(s)}
        if len(self._clean_ids) + len(fresh) > self.clean_ids_limit:
            self._clean_ids = set()
        self._clean_ids |= fresh - bad if bad else fresh
        return bad

    def _unit_masks(self, units: list[str | None], midx: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """(readings whose unit is not their known metric's, or None when there are none;
        readings that carry a unit). A batch holds few distinct (unit, metric) pairs, so each
        pair is judged once and the batch mapped onto the verdicts in C."""
        n = len(units)
        cat = self.catalogue
        allowed, unknown = cat.units, len(cat.specs)
        pairs = list(zip(units, midx.tolist()))
        bad_pairs = {(u, m) for u, m in set(pairs) if u is not None and m != unknown and u not in allowed[m]}
        bad = np.fromiter(map(bad_pairs.__contains__, pairs), dtype=bool, count=n) if bad_pairs else None
        return bad, np.fromiter(map(is_not, units, repeat(None)), dtype=bool, count=n)

    def validate(self, batch: MessageBatch, decoded: Decoded, raw_of: Callable[[int], bytes],
                 withhold: Callable[[int], bool] | None = None,
                 bad_location: np.ndarray | None = None, bad_sensor_id: np.ndarray | None = None,
                 units_as_sent: Mapping[int, str] | None = None) -> Validated:
        """Split ``decoded`` into valid readings and rejections with reasons.

        ``withhold(k)``: reading ``k`` is personal data whose quarantine row is redacted
        (privacy/stage.py), so its detail names the reason, the field and the limit but quotes no
        value, unit or sensor id (docs/privacy.md). ``bad_location``: readings whose position was
        invalid as sent (:func:`bad_positions`), judged by the privacy stage before it coarsened
        or dropped it: rounding 90.0004 to 90.0 must not make it valid (``input35``).
        ``bad_sensor_id``: per reading, the :func:`sensor_id_fault` of its id as sent (0: none), judged
        by the privacy stage before it pseudonymised the id (a pseudonym is always well-formed).
        ``units_as_sent``: reading -> unit, for readings whose unit the privacy stage dropped
        (``drop_fields: [unit]``): the unit is judged as sent, then not stored (``hostile36``)."""
        cols = decoded.columns
        n = len(cols)
        rejections = decoded.rejections
        if n == 0:
            cols.ts_us = cols.ts_us.astype(np.int64)
            cols.flags = np.zeros(0, np.int16)
            return Validated(cols, rejections)
        code = np.zeros(n, dtype=np.int8)

        def mark(reason: Reason, failed: np.ndarray) -> None:
            code[(code == 0) & failed] = _CODE[reason]

        distinct_ids = set(cols.sensor_id)
        bad_ids = self._bad_sensor_ids(distinct_ids)
        if bad_ids:
            mark(Reason.BAD_SENSOR_ID, np.fromiter(map(bad_ids.__contains__, cols.sensor_id), dtype=bool, count=n))
        if bad_sensor_id is not None:  # as sent, before the privacy stage pseudonymised it
            mark(Reason.BAD_SENSOR_ID, bad_sensor_id != 0)
        ts = cols.ts_us
        with np.errstate(invalid="ignore"):
            mark(Reason.BAD_TIMESTAMP, ~((ts >= _MIN_TS_US) & (ts <= _MAX_TS_US)))
        value = cols.value
        mark(Reason.MISSING_VALUE, cols.has_null_value)
        mark(Reason.NON_FINITE, ~np.isfinite(value))
        lat, lon = cols.lat, cols.lon
        has_lat, has_lon = ~np.isnan(lat), ~np.isnan(lon)
        if has_lat.any() or has_lon.any():
            mark(Reason.BAD_LOCATION, bad_positions(lat, lon))
        if bad_location is not None:  # as sent, before the privacy stage coarsened or dropped it
            mark(Reason.BAD_LOCATION, bad_location)
        cat = self.catalogue
        midx = cat.lookup(cols.metric)
        mark(Reason.UNKNOWN_METRIC, midx == len(cat.specs))
        units = judged = cols.unit
        if units_as_sent:  # judged as sent, stored without (the privacy stage dropped them)
            judged = list(units)
            for k, u in units_as_sent.items():
                judged[k] = u
        has_unit = np.zeros(n, dtype=bool)
        if judged.count(None) != n:
            bad_unit, has_unit = self._unit_masks(judged, midx)
            if bad_unit is not None:
                mark(Reason.UNIT_MISMATCH, bad_unit)
            if judged is not units:  # the flag says what is stored
                has_unit = np.fromiter(map(is_not, units, repeat(None)), dtype=bool, count=n)
        with np.errstate(invalid="ignore"):
            mark(Reason.OUT_OF_RANGE, (value < cat.low[midx]) | (value > cat.high[midx]))
            magnitude = np.abs(value)  # neither overflow (the catalogue's bounds) nor underflow in the rollups
            mark(Reason.OUT_OF_RANGE, (magnitude < MIN_ABS_VALUE) & (magnitude > 0))
        now_us = self.clock() * 1e6
        mark(Reason.FUTURE_TIMESTAMP, ts > now_us + self.rules.max_future_skew_s * 1e6)
        if self.rules.max_age_s is not None:
            mark(Reason.TOO_OLD, ts < now_us - self.rules.max_age_s * 1e6)
        if self.rules.min_event_time_s is not None:
            mark(Reason.TOO_OLD, ts < self.rules.min_event_time_s * 1e6)
        if self.known_sensors is not None:
            unknown_sensor = self.known_sensors.unknown_mask(cols.sensor_id, distinct_ids)
            if unknown_sensor is not None:
                mark(Reason.UNKNOWN_SENSOR, unknown_sensor)
        if self.rules.max_message_days is not None:
            beyond = _beyond_newest_days(ts, cols.msg, code == 0, self.rules.max_message_days)
            if beyond is not None:
                mark(Reason.TOO_MANY_DAYS, beyond)

        cols.flags = np.where(has_unit, np.int16(Flag.HAS_UNIT), np.int16(0)).astype(np.int16)
        bad = np.flatnonzero(code)
        if len(bad):
            rejections.extend(self._rejections(batch, cols, bad, code, midx, raw_of, withhold, bad_sensor_id, judged))
            cols = cols.take(code == 0)
        cols.ts_us = np.round(cols.ts_us).astype(np.int64)
        return Validated(cols, rejections)

    def _rejections(self, batch: MessageBatch, cols: ReadingColumns, bad: np.ndarray, code: np.ndarray,
                    midx: np.ndarray, raw_of: Callable[[int], bytes], withhold: Callable[[int], bool] | None,
                    bad_sensor_id: np.ndarray | None, judged: list[str | None]) -> list[Rejection]:
        """The rejections of readings ``bad`` (their codes in ``code``), in reading order.

        Batch-shaped: the rejected readings' codes, messages, items and values come out of numpy as
        lists in one call each, and a detail is built once per distinct :func:`_detail_key` of the
        batch instead of once per reading: a request of 1 M
        readings of one bad value built the same f-string 1 M times (benchmarks/README.md
        ``reject39``). Details that read the clock (``too_old``) are built per reading, as before."""
        n_bad = len(bad)
        codes = code[bad].tolist()
        msgs = cols.msg[bad].tolist()
        items = cols.item[bad].tolist()
        # a value's bits, not the float: -0.0 == 0.0 but their details differ ('-0.0' is quoted), NaN != NaN
        values = np.ascontiguousarray(cols.value[bad], dtype=np.float64).view(np.int64).tolist()
        metrics, sensors = cols.metric, cols.sensor_id
        topics, partitions, offsets = batch.topics, batch.partitions, batch.offsets
        nones = [None] * n_bad
        topic_of = [topics[m] for m in msgs] if topics is not None else nones
        partition_of = [partitions[m] for m in msgs] if partitions is not None else nones
        offset_of = [offsets[m] for m in msgs] if offsets is not None else nones
        source = batch.source
        details: dict[tuple, str] = {}
        out: list[Rejection] = []
        run: PartRun | None = None  # the rejections of the current part (message, item)
        for j, k in enumerate(bad.tolist()):
            c = codes[j]
            reason = _CHECK_ORDER[c - 1]
            withheld = withhold is not None and withhold(k)
            if reason is Reason.BAD_SENSOR_ID and bad_sensor_id is not None and bad_sensor_id[k]:
                detail = _sent_id_detail(int(bad_sensor_id[k]), withheld)
            elif reason is Reason.TOO_OLD:  # its detail reads the clock
                detail = self._detail(reason, cols, k, int(midx[k]), withheld, judged)
            else:
                key = _detail_key(reason, c, withheld, metrics[k], values[j], judged[k], sensors[k])
                detail = details.get(key)  # type: ignore[assignment]
                if detail is None:
                    detail = details[key] = self._detail(reason, cols, k, int(midx[k]), withheld, judged)
            rej = Rejection(reason=reason, payload=raw_of(k), detail=detail, source=source, topic=topic_of[j],
                            partition=partition_of[j], offset=offset_of[j], item=items[j])
            # readings of one part (cells of a CSV row) rejected for one reason: one row naming each
            # (quality/same_part.py); a part's readings are consecutive, so only its run is searched
            if j and items[j] == items[j - 1] and msgs[j] == msgs[j - 1]:
                if run.join(rej):  # type: ignore[union-attr]
                    continue
            else:
                run = PartRun(rej)
            out.append(rej)
        return out

    def _detail(self, reason: Reason, cols: ReadingColumns, k: int, m: int, withheld: bool = False,
                units: list[str | None] | None = None) -> str:
        """A human explanation for one rejected reading (only built for rejects); ``withheld``:
        without the reading's value, unit or sensor id (a personal reading, see :meth:`validate`);
        ``units``: the units as judged (as sent, where the privacy stage dropped them)."""
        metric = cols.metric[k]
        if withheld and reason in _QUOTING:
            return self._withheld_detail(reason, metric, m, float(cols.value[k]))
        if reason is Reason.UNKNOWN_METRIC:
            return f"metric {metric!r} is not in the catalogue; add it under validation.metrics"
        if reason is Reason.OUT_OF_RANGE:
            spec = self.catalogue.specs[m]
            value = float(cols.value[k])
            if abs(value) > MAX_ABS_VALUE:
                return (f"{metric}={value!r} is beyond ±{MAX_ABS_VALUE:g}, the largest magnitude stored whatever the "
                        f"catalogue says (rollup statistics would overflow); send it in a larger unit")
            if 0 < abs(value) < MIN_ABS_VALUE:
                return (f"{metric}={value!r} is closer to zero than {MIN_ABS_VALUE:g}, the smallest magnitude stored "
                        f"other than 0 (rollup statistics would underflow); send it in a smaller unit, or 0")
            return f"{metric}={value!r} outside the physical range [{spec.min}, {spec.max}] {spec.unit}"
        if reason is Reason.UNIT_MISMATCH:
            spec = self.catalogue.specs[m]
            unit = (cols.unit if units is None else units)[k]
            return f"unit {unit!r} for {metric}; expected {spec.unit!r} or one of {sorted(spec.aliases)}"
        if reason is Reason.FUTURE_TIMESTAMP:
            skew = self.rules.max_future_skew_s  # one detail a batch (_detail_key): no per-reading figure
            return (f"event time is more than {plain_duration(skew)} ahead of the clock "
                    f"(validation.max_future_skew_s, {skew:,.0f} s)")
        if reason is Reason.TOO_OLD:
            floor = self.rules.min_event_time_s
            ts_us = float(cols.ts_us[k])
            if floor is not None and ts_us < floor * 1e6:
                since = datetime.fromtimestamp(floor, timezone.utc).isoformat().replace("+00:00", "Z")
                detail = (f"event time is before {since} (validation.min_event_time); to import older history set "
                          f"it earlier, e.g. 1950-01-01")
                window_s = max(self.rules.max_age_s or 0, 366 * 86400.0)
            else:
                limit = self.rules.max_age_s or 0
                age = plain_duration(self.clock() - ts_us / 1e6)
                detail = (f"event time is {age} old, older than the {plain_duration(limit)} validation.max_age_s "
                          f"allows ({limit:,.0f} s)")
                window_s = self.rules.max_age_s or 0
            as_seconds_us = ts_us * 1000.0  # the number read as seconds instead of ms
            if abs(as_seconds_us - self.clock() * 1e6) <= window_s * 1e6:
                detail += ("; the timestamp looks like epoch seconds read as milliseconds: send ms, or set "
                           "formats.options.json.ts_unit to s (or auto)")
            elif floor is not None and 0 <= ts_us < 366 * 86400e6:
                detail += "; a time in 1970 is what a device whose clock was never set sends"
            return detail
        if reason is Reason.TOO_MANY_DAYS:
            limit = self.rules.max_message_days
            return (f"the message's readings touch more than {limit} distinct days (UTC) "
                    f"(validation.max_message_days); the newest {limit} days were kept and this reading is on an "
                    f"older one (each day is a TimescaleDB chunk, a month a partition); send history in messages of "
                    f"at most {limit} days each, or raise validation.max_message_days (null: no limit)")
        if reason is Reason.MISSING_VALUE:
            return "value is null"
        if reason is Reason.NON_FINITE:
            return f"value {float(cols.value[k])!r} is not a finite number"
        if reason is Reason.BAD_TIMESTAMP:
            return "timestamp is not a finite time between 1900 and 2200"
        if reason is Reason.BAD_LOCATION:
            return "lat/lon must both be given, finite, within ±90/±180"
        if reason is Reason.UNKNOWN_SENSOR:
            return (f"sensor {cols.sensor_id[k]!r} is not in the sensor registry (registry.unregistered: quarantine); "
                    "register it with PUT /sensors/{id} or urbanpulse registry import")
        if reason is Reason.BAD_SENSOR_ID:
            size = len(cols.sensor_id[k])
            if not size or size > MAX_SENSOR_ID_CHARS:
                return f"sensor_id is {size} characters long; it must be 1 to {MAX_SENSOR_ID_CHARS}"
            return "sensor_id has control characters or surrounding whitespace"
        return reason.value

    def _withheld_detail(self, reason: Reason, metric: str, m: int, value: float) -> str:
        """The detail of a personal reading for the reasons whose usual detail quotes what it carries:
        what was wrong and what would be accepted, so an operator can act, but not the value."""
        why = "personal data; the redacted payload keeps what its data class allows"
        if reason is Reason.OUT_OF_RANGE:
            if abs(value) > MAX_ABS_VALUE:
                return (f"{metric} is beyond ±{MAX_ABS_VALUE:g}, the largest magnitude stored; send it in a larger "
                        f"unit (value withheld: {why})")
            if 0 < abs(value) < MIN_ABS_VALUE:
                return (f"{metric} is closer to zero than {MIN_ABS_VALUE:g}, the smallest magnitude stored other "
                        f"than 0; send it in a smaller unit, or 0 (value withheld: {why})")
            spec = self.catalogue.specs[m]
            return f"{metric} outside the physical range [{spec.min}, {spec.max}] {spec.unit} (value withheld: {why})"
        if reason is Reason.UNIT_MISMATCH:
            spec = self.catalogue.specs[m]
            return (f"unit of {metric} is not {spec.unit!r} or one of {sorted(spec.aliases)} "
                    f"(unit withheld: {why})")
        if reason is Reason.NON_FINITE:
            return f"value is not a finite number (NaN or infinite; withheld: {why})"
        return ("sensor is not in the sensor registry (registry.unregistered: quarantine); register it with "
                f"PUT /sensors/{{id}} or urbanpulse registry import (id withheld: {why})")


#: reasons whose detail (:meth:`ReadingValidator._detail`) names the sensor id; the metric and the unit;
#: the metric and the value; the metric; nothing of the reading
_BY_SENSOR = frozenset({Reason.UNKNOWN_SENSOR, Reason.BAD_SENSOR_ID})
_BY_UNIT = frozenset({Reason.UNIT_MISMATCH})
_BY_VALUE = frozenset({Reason.OUT_OF_RANGE, Reason.NON_FINITE})
_BY_METRIC = frozenset({Reason.UNKNOWN_METRIC})


def _detail_key(reason: Reason, code: int, withheld: bool, metric: str, value_bits: int, unit: str | None,
                sensor_id: str) -> tuple:
    """What a reading's detail is a function of, for ``reason`` (not ``too_old``, which reads the
    clock): readings of one key have one detail. ``value_bits``: the value's float64 bits."""
    if reason in _BY_VALUE:
        return code, withheld, metric, value_bits
    if reason in _BY_METRIC:
        return code, metric
    if reason in _BY_SENSOR:
        return code, withheld, sensor_id
    if reason in _BY_UNIT:
        return code, withheld, metric, unit
    return (code,)


#: :func:`sensor_id_fault`'s verdicts
ID_OK, ID_LENGTH, ID_CHARACTERS = 0, 1, 2


def sensor_id_fault(s: str) -> int:
    """Why ``s`` is not a valid sensor id (reason ``bad_sensor_id``): :data:`ID_LENGTH` (empty or
    longer than ``MAX_SENSOR_ID_CHARS``), :data:`ID_CHARACTERS` (control characters, i.e. NUL, lone
    surrogates, format characters, anything not printable, or surrounding whitespace), else
    :data:`ID_OK` (0). One predicate for validation and for the privacy stage, which judges a
    personal id as sent before it replaces it by a pseudonym (always well-formed)."""
    if not s or len(s) > MAX_SENSOR_ID_CHARS:
        return ID_LENGTH
    if not s.isprintable() or s != s.strip():
        return ID_CHARACTERS
    return ID_OK


def _sent_id_detail(fault: int, withheld: bool) -> str:
    """The detail of a reading whose id the privacy stage found invalid as sent and pseudonymised:
    what was wrong, never the id (nor its pseudonym's length, which says nothing of it)."""
    why = " (id withheld: personal data; it is replaced by a pseudonym after this check)" if withheld else ""
    if fault == ID_LENGTH:
        return f"sensor_id as sent is empty or longer than {MAX_SENSOR_ID_CHARS} characters; it must be 1 to " \
               f"{MAX_SENSOR_ID_CHARS}{why}"
    return f"sensor_id as sent has control characters or surrounding whitespace{why}"


def bad_positions(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Which positions are invalid (reason ``bad_location``): one of lat/lon missing (NaN), or
    not finite, or beyond ±90/±180. No position (both NaN) is valid. Vectorised."""
    has_lat, has_lon = ~np.isnan(lat), ~np.isnan(lon)
    with np.errstate(invalid="ignore"):
        return (has_lat != has_lon) | (has_lat & ~((np.abs(lat) <= 90) & (np.abs(lon) <= 180)))


#: reasons whose usual detail quotes the reading's value, unit or sensor id (withheld for personal readings)
_QUOTING = frozenset({Reason.OUT_OF_RANGE, Reason.UNIT_MISMATCH, Reason.NON_FINITE, Reason.UNKNOWN_SENSOR})


def _beyond_newest_days(ts_us: np.ndarray, msg: np.ndarray, ok: np.ndarray, limit: int) -> np.ndarray | None:
    """Readings (among ``ok``) on a day older than their message's ``limit`` newest distinct UTC
    days; None when no message touches more than ``limit`` days (the common case costs a min and
    a max). Vectorised: one ``np.unique`` over (message, day) keys, newest day first in each message."""
    if not ok.any():
        return None
    days = np.floor_divide(ts_us[ok], _DAY_US).astype(np.int64)
    if int(days.max()) - int(days.min()) < limit:
        return None
    # 1900..2200 is days -25,567..83,035: offset into 0..2**18, newest first within a message
    key = msg[ok].astype(np.int64) * (1 << 18) + ((1 << 17) - days)
    uniq, inverse = np.unique(key, return_inverse=True)
    owner = uniq >> 18
    rank = np.arange(len(uniq)) - np.searchsorted(owner, owner, side="left")
    over = rank[inverse] >= limit
    if not over.any():
        return None
    out = np.zeros(len(ts_us), dtype=bool)
    out[np.flatnonzero(ok)[over]] = True
    return out
