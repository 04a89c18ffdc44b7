"""The canonical reading and rejection types that everything after decoding speaks.

A reading is a plain msgspec Struct because decoding happens in C; batches of readings
are then held as numpy columns (:class:`ReadingColumns`) so the hot path does not keep
one Python object per reading alive longer than the decode.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from itertools import compress
from typing import Annotated

import msgspec
import numpy as np

#: A sensor id or metric name: bounded, non-empty text.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
#: RFC 3339 with a UTC offset, or epoch milliseconds.
EventTime = Annotated[datetime, msgspec.Meta(tz=True)] | float


class Reading(msgspec.Struct, forbid_unknown_fields=False):
    """One canonical reading as it arrives on the wire (JSON object).

    ``ts`` is RFC 3339 with an offset, or epoch milliseconds.
    """

    sensor_id: Name
    metric: Name
    ts: EventTime
    value: float | None
    lat: float | None = None
    lon: float | None = None
    unit: str | None = None


class Flag(enum.IntFlag):
    """Quality flags stored with each reading (``readings.flags``)."""

    NONE = 0
    LATE = 1
    HAS_UNIT = 2


class Reason(str, enum.Enum):
    """Why a message or reading was quarantined. Stable codes: dashboards filter on them."""

    EMPTY_PAYLOAD = "empty_payload"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    TOO_DEEP = "too_deep"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    BAD_TYPE = "bad_type"
    BAD_SENSOR_ID = "bad_sensor_id"
    BAD_TIMESTAMP = "bad_timestamp"
    MISSING_VALUE = "missing_value"
    NON_FINITE = "non_finite"
    BAD_LOCATION = "bad_location"
    UNKNOWN_METRIC = "unknown_metric"
    UNIT_MISMATCH = "unit_mismatch"
    OUT_OF_RANGE = "out_of_range"
    FUTURE_TIMESTAMP = "future_timestamp"
    TOO_OLD = "too_old"
    TOPIC_MISMATCH = "topic_mismatch"
    #: the message breaks its format's own syntax (line protocol, CSV, CBOR)
    MALFORMED = "malformed"
    #: a JSON object sends one key twice (formats/duplicate_keys.py): which value was meant is unknown
    DUPLICATE_KEY = "duplicate_key"
    #: the format or validation raised on this message or item (a bug or input nobody
    #: anticipated); ``detail`` holds the exception's type and text
    DECODE_ERROR = "decode_error"
    UNKNOWN_SENSOR = "unknown_sensor"  # registry.unregistered: quarantine
    POISON_MESSAGE = "poison_message"  # crashed its source when decoded alone; not decoded again
    #: the message's readings touch more days than validation.max_message_days: the oldest days' readings
    TOO_MANY_DAYS = "too_many_days"


@dataclass(slots=True)
class Rejection:
    """A quarantined message or reading: the raw bytes, where it came from and why."""

    reason: Reason
    detail: str
    payload: bytes
    source: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    item: int = -1  # index inside a JSON array, -1 for the whole message
    #: the message may have been quarantined before (an MQTT PUBLISH the broker redelivered with
    #: DUP set): its row is written only if no row of the same message is there yet (storage/writer.py)
    redelivered: bool = False


@dataclass(slots=True)
class ReadingColumns:
    """A batch of decoded readings held column-wise.

    ``msg`` is the index of the message each reading came from (for quarantine
    provenance); ``item`` its index inside that message's array (-1 if single object).
    """

    sensor_id: list[str]
    metric: list[str]
    ts_us: np.ndarray  # int64 microseconds since the Unix epoch, UTC
    value: np.ndarray  # float64; NaN where the payload had null
    lat: np.ndarray  # float64, NaN when absent
    lon: np.ndarray
    unit: list[str | None]
    msg: np.ndarray  # int32
    item: np.ndarray  # int32
    has_null_value: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    flags: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    #: ordered sub-stream of the source each reading came from (a Kafka topic-partition), for
    #: per-partition watermarks; empty = one stream
    lane: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))

    @staticmethod
    def empty() -> ReadingColumns:
        """No readings, with the dtypes validation produces (ts_us int64, flags int16)."""
        return ReadingColumns(sensor_id=[], metric=[], ts_us=np.zeros(0, np.int64), value=np.zeros(0),
                              lat=np.zeros(0), lon=np.zeros(0), unit=[], msg=np.zeros(0, np.int32),
                              item=np.zeros(0, np.int32), has_null_value=np.zeros(0, bool),
                              flags=np.zeros(0, np.int16))

    def take(self, keep: np.ndarray) -> ReadingColumns:
        """The subset selected by boolean mask ``keep`` (lists filtered in C by
        ``itertools.compress``, about half the cost of indexing them one reading at a time;
        arrays by numpy)."""
        idx = np.flatnonzero(keep)
        mask = np.asarray(keep, dtype=bool).tolist()
        return ReadingColumns(
            sensor_id=list(compress(self.sensor_id, mask)),
            metric=list(compress(self.metric, mask)),
            ts_us=self.ts_us[idx], value=self.value[idx], lat=self.lat[idx], lon=self.lon[idx],
            unit=list(compress(self.unit, mask)), msg=self.msg[idx], item=self.item[idx],
            has_null_value=self.has_null_value[idx],
            flags=self.flags[idx] if len(self.flags) else np.zeros(len(idx), np.int16),
            lane=self.lane[idx] if len(self.lane) else np.zeros(0, np.int16),
        )

    @staticmethod
    def concat(parts: list[ReadingColumns]) -> ReadingColumns:
        """Join several batches' columns into one (the batcher's job)."""
        if len(parts) == 1:
            return parts[0]
        sensor: list[str] = []
        metric: list[str] = []
        unit: list[str | None] = []
        for p in parts:
            sensor.extend(p.sensor_id)
            metric.extend(p.metric)
            unit.extend(p.unit)
        cat = np.concatenate
        return ReadingColumns(
            sensor_id=sensor, metric=metric, ts_us=cat([p.ts_us for p in parts]),
            value=cat([p.value for p in parts]), lat=cat([p.lat for p in parts]), lon=cat([p.lon for p in parts]),
            unit=unit, msg=cat([p.msg for p in parts]), item=cat([p.item for p in parts]),
            has_null_value=cat([p.has_null_value for p in parts]), flags=cat([p.flags for p in parts]),
            lane=cat([p.lane if len(p.lane) == len(p) else np.zeros(len(p), np.int16) for p in parts])
            if any(len(p.lane) for p in parts) else np.zeros(0, np.int16),
        )

    def __len__(self) -> int:
        return len(self.sensor_id)
