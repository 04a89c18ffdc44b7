"""What every vendor format shares: options, a row builder, JSON checks and the never-raise loop.

A vendor format turns each message into zero or more readings (rows) and rejections. It only
writes :meth:`VendorFormat.decode_message`; this base class handles the size limit, the
per-message exception barrier (no payload may raise out of ``decode``), metric-name mapping and
unit conversion (:mod:`urbanpulse.formats.units`) and the columns the validator expects.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import msgspec
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from urbanpulse.formats import duplicate_keys
from urbanpulse.formats.as_sent import FieldPath, MembersPath, MessageAsSent
from urbanpulse.formats.base import Decoded, DecodeLimits, MessageBatch, depth_and_quotes, describe_exception
from urbanpulse.formats.units import MetricMapper
from urbanpulse.model import ReadingColumns, Reason, Rejection
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.same_part import join_same_parts


class FormatOptions(BaseModel):
    """Options every vendor format takes (each format extends this model)."""

    model_config = ConfigDict(extra="forbid")

    metric_names: dict[str, str] = Field(
        default_factory=dict, description="vendor metric name -> catalogue metric, on top of the shipped table")
    units: dict[str, str] = Field(
        default_factory=dict, description="unit of a vendor metric whose payload states none, e.g. {BME280_pressure: Pa}")
    non_numeric: str = Field(
        "skip", pattern="^(skip|reject)$",
        description="string/boolean values: skip them (they are not readings) or quarantine them as bad_type")


class DecodeFailure(Exception):
    """Raised inside a decoder to reject the whole message with a reason and a detail."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Rows:
    """Readings of one batch as growing columns (append per reading, numpy at the end)."""

    __slots__ = ("sensor", "metric", "ts_us", "value", "lat", "lon", "unit", "msg", "item", "null", "raw")

    def __init__(self) -> None:
        self.sensor: list[str] = []
        self.metric: list[str] = []
        self.ts_us: list[float] = []
        self.value: list[float] = []
        self.lat: list[float] = []
        self.lon: list[float] = []
        self.unit: list[str | None] = []
        self.msg: list[int] = []
        self.item: list[int] = []
        self.null: list[bool] = []
        self.raw: list[object] = []

    def add(self, msg: int, item: int, sensor: str, metric: str, ts_us: float, value: float | None,
            unit: str | None = None, lat: float | None = None, lon: float | None = None, raw: object = None) -> None:
        """One reading; ``raw`` is what to quarantine for it (None: the whole message). A time, value or
        position that is not a number, or a sensor, metric or unit that is not text, raises TypeError here,
        inside :meth:`VendorFormat.decode`'s per-message barrier (its message alone is quarantined as
        ``decode_error``), not later for the whole batch when the columns are built and metric names mapped."""
        if type(sensor) is not str or type(metric) is not str or not (unit is None or type(unit) is str):
            _text_fields(sensor, metric, unit)
        ts = _number("ts_us", ts_us)
        number = math.nan if value is None else _number("value", value)
        at_lat = math.nan if lat is None else _number("lat", lat)
        at_lon = math.nan if lon is None else _number("lon", lon)
        self.sensor.append(sensor)
        self.metric.append(metric)
        self.ts_us.append(ts)
        self.null.append(value is None)
        self.value.append(number)
        self.lat.append(at_lat)
        self.lon.append(at_lon)
        self.unit.append(unit)
        self.msg.append(msg)
        self.item.append(item)
        self.raw.append(raw)

    def truncate(self, n: int) -> None:
        """Drop rows added after the first ``n`` (a message that failed half-way)."""
        for name in self.__slots__:
            del getattr(self, name)[n:]

    def __len__(self) -> int:
        return len(self.sensor)

    def columns(self) -> ReadingColumns:
        """The rows as the columns the validator takes."""
        return ReadingColumns(
            sensor_id=self.sensor, metric=self.metric,
            ts_us=np.array(self.ts_us, dtype=np.float64), value=np.array(self.value, dtype=np.float64),
            lat=np.array(self.lat, dtype=np.float64), lon=np.array(self.lon, dtype=np.float64),
            unit=self.unit, msg=np.array(self.msg, dtype=np.int32), item=np.array(self.item, dtype=np.int32),
            has_null_value=np.array(self.null, dtype=bool))


def _number(field: str, x: object) -> float:
    """``x`` as a float for a column of :class:`Rows`, or TypeError saying what a plugin should pass."""
    if type(x) is float:
        return x
    if isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_)):
        return float(x)
    raise TypeError(f"Rows.add: {field} must be a number, got {type(x).__name__} {x!r:.60}; "
                    f"convert it first (urbanpulse.formats.vendor.as_number, parse_time)")


def _text_fields(sensor: object, metric: object, unit: object) -> None:
    """TypeError naming the first of a row's text fields that is not text (a plugin passed a payload's field as
    it came: a missing ``type`` is None, a numeric id an int), saying what to pass."""
    for field, x, optional in (("sensor", sensor, False), ("metric", metric, False), ("unit", unit, True)):
        if not (isinstance(x, str) or (optional and x is None)):
            raise TypeError(f"Rows.add: {field} must be text{' or None' if optional else ''}, got {type(x).__name__} "
                            f"{x!r:.60}; check the payload's field and reject the message (DecodeFailure) or item "
                            f"when it is missing or of another type")


def as_number(value: object) -> float | None:
    """A JSON number as float (bool is not a number); None for anything else."""
    if type(value) is float or type(value) is int:
        try:
            return float(value)
        except OverflowError:
            return math.inf
    return None


def parse_time(value: object, unit: str = "s") -> float | None:
    """Event time in µs from RFC 3339 text or an epoch number in ``unit`` (s, ms, us, ns)."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text[-1] in "zZ":
            text = text[:-1] + "+00:00"
        # Python < 3.11 and nanosecond fractions: keep at most 6 fraction digits
        if "." in text:
            head, _, rest = text.partition(".")
            digits = len(rest) - len(rest.lstrip("0123456789"))
            if digits > 6:
                rest = rest[:6] + rest[digits:]
            text = head + "." + rest
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            return None
        if dt.tzinfo is None:
            return None
        return dt.timestamp() * 1e6
    number = as_number(value)
    if number is None:
        return None
    return number * {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}[unit]


class VendorFormat:
    """Base of the vendor formats: subclasses set ``name``, ``Options`` and ``decode_message``."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[FormatOptions]] = FormatOptions
    #: the time unit of the format's epoch numbers, stated in docs and ``urbanpulse plugins``
    time_unit: ClassVar[str] = "s"
    _last_sent: MessageAsSent | None = None

    def __init__(self, options: FormatOptions | Mapping[str, Any] | None = None,
                 limits: DecodeLimits | None = None, catalogue: MetricCatalogue | None = None) -> None:
        if options is None:
            options = self.Options()
        elif not isinstance(options, self.Options):
            options = self.Options.model_validate(dict(options))
        self.options = options
        self.limits = limits or DecodeLimits()
        self.mapper = MetricMapper(catalogue or MetricCatalogue.load(), options.metric_names)

    # -- the loop --------------------------------------------------------------------------

    def decode(self, batch: MessageBatch) -> Decoded:
        """Decode every message; a bad message becomes a rejection, never an exception."""
        rows = Rows()
        rejections: list[Rejection] = []
        max_bytes = self.limits.max_payload_bytes
        now_us = (batch.received_ns / 1000.0) if batch.received_ns else time.time() * 1e6
        for i, payload in enumerate(batch.payloads):
            if not isinstance(payload, (bytes, bytearray, memoryview)):
                rejections.append(self.reject(batch, i, Reason.BAD_TYPE, "payload is not bytes", b""))
                continue
            payload = bytes(payload)
            size = len(payload)
            if size == 0:
                rejections.append(self.reject(batch, i, Reason.EMPTY_PAYLOAD, "message is empty", payload))
                continue
            if size > max_bytes:
                rejections.append(self.reject(
                    batch, i, Reason.PAYLOAD_TOO_LARGE,
                    f"{size} bytes exceeds the {max_bytes}-byte limit (validation.max_payload_bytes); not parsed", payload))
                continue
            mark = len(rows)
            mark_rej = len(rejections)
            try:
                self.decode_message(batch, i, payload, now_us, rows, rejections)
                join_same_parts(rejections, mark_rej)  # two bad cells of one CSV row: one row naming both
            except DecodeFailure as exc:
                rows.truncate(mark)
                del rejections[mark_rej:]
                rejections.append(self.reject(batch, i, exc.reason, exc.detail[:300], payload))
            except RecursionError:
                rows.truncate(mark)
                del rejections[mark_rej:]
                rejections.append(self.reject(batch, i, Reason.TOO_DEEP, "nesting exceeds the parser's limit", payload))
            except Exception as exc:  # noqa: BLE001 - the barrier: no payload may stop a source
                rows.truncate(mark)
                del rejections[mark_rej:]
                rejections.append(self.reject(  # the same reason the pipeline's own barrier gives
                    batch, i, Reason.DECODE_ERROR, f"{self.name}: {describe_exception(exc)}"[:300], payload))
        columns = self.mapper.apply(rows.columns())
        return Decoded(columns=columns, rejections=rejections, raw_items=rows.raw)

    def decode_message(self, batch: MessageBatch, i: int, payload: bytes, now_us: float, rows: Rows,
                       rejections: list[Rejection]) -> None:
        """Append the readings of message ``i`` to ``rows`` (rejections of single items to
        ``rejections``); raise :class:`DecodeFailure` to reject the whole message."""
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------------------

    def parse_json(self, payload: bytes, repeats: bool = True) -> Any:
        """The payload as JSON, or DecodeFailure with the reason (UTF-8, syntax, depth, and with
        ``repeats`` a key sent twice in one object: ``duplicate_key``, formats/duplicate_keys.py)."""
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeFailure(Reason.INVALID_UTF8, str(exc)[:200]) from None
        try:
            obj = json.loads(text)
        except RecursionError:
            raise DecodeFailure(Reason.TOO_DEEP, "JSON nesting exceeds the parser's limit") from None
        except ValueError as exc:
            raise DecodeFailure(Reason.INVALID_JSON, str(exc)[:200]) from None
        quotes = depth_and_quotes(obj, self.limits.max_json_depth)
        if quotes < 0:
            raise DecodeFailure(Reason.TOO_DEEP,
                                f"JSON nests deeper than {self.limits.max_json_depth} levels (validation.max_json_depth)")
        if repeats and duplicate_keys.may_repeat(text, quotes):
            key = duplicate_keys.repeated_key(text)
            if key is not None:
                raise DecodeFailure(duplicate_keys.REASON, duplicate_keys.detail(key))
        return obj

    def unit_for(self, vendor_metric: str, stated: str | None) -> str | None:
        """The unit the payload states, else the one configured for this vendor metric."""
        if stated:
            return stated
        return self.options.units.get(vendor_metric)

    def non_numeric(self, batch: MessageBatch, i: int, item: int, field: str, value: object,
                    rejections: list[Rejection], path: FieldPath | None = None) -> None:
        """A string/boolean/object value where a number belongs: skipped or rejected per options
        (quarantined as sent when ``path`` says where it is in the message)."""
        if self.options.non_numeric == "reject":
            raw = self.as_sent(batch.payloads[i], path) if path is not None else json_bytes({field: value})
            rejections.append(self.reject(batch, i, Reason.BAD_TYPE,
                                          f"{field!r} is {type(value).__name__}, not a number", raw, item))

    def as_sent(self, payload: bytes, path: FieldPath | MembersPath) -> bytes:
        """The field at ``path`` of ``payload`` as it arrived (urbanpulse.formats.as_sent), else
        its parsed form re-encoded. The last message's members are kept: a batch's rejections
        ask for the fields of one message after another."""
        last = self._last_sent
        if last is None or last.payload is not payload:
            last = self._last_sent = MessageAsSent(payload)
        got = last.field(path) if type(path) is FieldPath else last.members(path)  # type: ignore[arg-type]
        return got if got is not None else json_bytes(path.parsed)

    @staticmethod
    def reject(batch: MessageBatch, i: int, reason: Reason, detail: str, payload: bytes, item: int = -1) -> Rejection:
        """A rejection of message ``i`` (or of item ``item`` in it) with its provenance."""
        topic, partition, offset = batch.provenance(i)
        return Rejection(reason=reason, detail=detail, payload=payload, source=batch.source,
                         topic=topic, partition=partition, offset=offset, item=item)

    def raw_of(self, batch: MessageBatch, decoded: Decoded, k: int) -> bytes:
        """What to quarantine for reading ``k``: its own item when it has one (a field located in
        the message is taken as sent), else the message."""
        raw = decoded.raw_items[k] if k < len(decoded.raw_items) else None
        if raw is None:
            return batch.payloads[int(decoded.columns.msg[k])]
        if isinstance(raw, bytes):
            return raw
        if type(raw) is FieldPath or type(raw) is MembersPath:
            payload = batch.payloads[int(decoded.columns.msg[k])]
            return self.as_sent(payload, raw) if type(payload) is bytes else json_bytes(raw.parsed)
        return json_bytes(raw)


def json_bytes(obj: object) -> bytes:
    """``obj`` (a parsed item, a msgspec struct) as JSON bytes to quarantine, whatever it holds.

    A lone surrogate (JSON ``"\\ud800"``, which Python's parser accepts) cannot be encoded as
    UTF-8: such text is written with ``\\u`` escapes, i.e. as it was sent, so the row replays;
    only what JSON cannot hold at all falls back to ``repr``. Never raises: a rejection whose
    payload cannot be built must not turn into its whole message's ``decode_error``."""
    try:
        return msgspec.json.encode(obj)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        pass
    try:
        return json.dumps(msgspec.to_builtins(obj), ensure_ascii=True).encode("ascii")
    except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError):
        return repr(obj).encode("utf-8", "backslashreplace")


def check_name(value: object, what: str) -> str:
    """A sensor id or metric name from a payload: non-empty text up to 128 characters."""
    if not isinstance(value, str) or not value:
        raise DecodeFailure(Reason.BAD_SENSOR_ID if what == "sensor id" else Reason.MISSING_FIELD,
                            f"{what} missing or not text")
    if len(value) > 128:
        raise DecodeFailure(Reason.BAD_SENSOR_ID if what == "sensor id" else Reason.BAD_TYPE,
                            f"{what} longer than 128 characters")
    return value
