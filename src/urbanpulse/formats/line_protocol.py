"""InfluxDB line protocol (``influx_line``), as in the InfluxDB v2 line protocol reference.

``measurement[,tag=value...] field=value[,field=value...] [timestamp]``, one point per line.
Escaping: measurement ``\\,`` and ``\\ ``; tag keys/values and field keys also ``\\=``; string
field values ``\\"`` and ``\\\\``. A backslash before any other character is literal. Lines
starting with ``#`` are comments. Field values: floats (``1``, ``-1.2e3``), integers (``1i``),
unsigned integers (``1u``), strings (``"..."``), booleans (``t``/``true``/...). A missing timestamp
means the time the message was received, as InfluxDB uses its own clock.

Mapping to readings (options): each numeric field is one reading. The sensor id comes from the
first present tag of ``sensor_tags`` (default ``sensor_id``, ``sensor``, ``device``, ``host``);
the metric is the field key, or the measurement when the field key is ``value``
(``pm2_5,sensor_id=a value=3``) or ``metric_from: measurement_field`` joins them. A ``unit`` tag
sets the unit; ``lat``/``lon`` fields or tags are the position, not readings. Timestamp
precision is an option (``ns`` by default, as InfluxDB). String and boolean fields are skipped.
"""

from __future__ import annotations

import codecs
import math
from typing import Literal

from pydantic import Field

from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.vendor import DecodeFailure, FormatOptions, Rows, VendorFormat
from urbanpulse.model import Reason, Rejection

_PRECISION_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
_TRUE = {"t", "T", "true", "True", "TRUE"}
_FALSE = {"f", "F", "false", "False", "FALSE"}


class LineProtocolOptions(FormatOptions):
    """How points become readings."""

    precision: Literal["ns", "us", "ms", "s"] = Field("ns", description="unit of the timestamps")
    sensor_tags: list[str] = Field(default_factory=lambda: ["sensor_id", "sensor", "device", "host"],
                                   description="tags tried in order for the sensor id")
    metric_from: Literal["field", "measurement_field"] = Field(
        "field", description="metric = field key (measurement when the key is `value`), or measurement_field")
    unit_tag: str = "unit"
    position_keys: tuple[str, str] = ("lat", "lon")


class LineSyntaxError(ValueError):
    """A line that is not line protocol."""


def _scan(line: str, pos: int, stops: str) -> tuple[str, int]:
    """Read an escaped token from ``pos`` up to an unescaped character in ``stops``."""
    out: list[str] = []
    n = len(line)
    while pos < n:
        c = line[pos]
        if c == "\\" and pos + 1 < n and (line[pos + 1] in stops or line[pos + 1] == "\\"):
            out.append(line[pos + 1])
            pos += 2
            continue
        if c in stops:
            break
        out.append(c)
        pos += 1
    return "".join(out), pos


def parse_line(line: str, spans: dict[str, tuple[int, int]] | None = None
               ) -> tuple[str, dict[str, str], dict[str, object], int | None]:
    """(measurement, tags, fields, timestamp) of one line; raises LineSyntaxError. ``spans``, if
    given, gets each field's ``key=value`` text as (start, end) in ``line``, and ``""`` the end of
    the measurement and tags (see :class:`_OneField`)."""
    measurement, pos = _scan(line, 0, ", ")
    if not measurement:
        raise LineSyntaxError("missing measurement")
    tags: dict[str, str] = {}
    n = len(line)
    while pos < n and line[pos] == ",":
        key, pos = _scan(line, pos + 1, ",= ")
        if pos >= n or line[pos] != "=":
            raise LineSyntaxError(f"tag {key!r} has no '='")
        value, pos = _scan(line, pos + 1, ",= ")
        if not key or not value:
            raise LineSyntaxError("empty tag key or value")
        tags[key] = value
    if pos >= n or line[pos] != " ":
        raise LineSyntaxError("no field set after the measurement and tags")
    if spans is not None:
        spans[""] = (pos, pos)
    pos += 1
    fields: dict[str, object] = {}
    while True:
        field_start = pos
        key, pos = _scan(line, pos, ",= ")
        if pos >= n or line[pos] != "=" or not key:
            raise LineSyntaxError(f"field {key!r} has no '=' or no key")
        pos += 1
        if pos < n and line[pos] == '"':
            pos += 1
            out: list[str] = []
            while pos < n and line[pos] != '"':
                if line[pos] == "\\" and pos + 1 < n and line[pos + 1] in '"\\':
                    out.append(line[pos + 1])
                    pos += 2
                else:
                    out.append(line[pos])
                    pos += 1
            if pos >= n:
                raise LineSyntaxError(f"string field {key!r} has no closing quote")
            pos += 1
            fields[key] = "".join(out)
        else:
            start = pos
            while pos < n and line[pos] not in ", ":
                pos += 1
            fields[key] = _field_value(key, line[start:pos])
        if spans is not None:
            spans[key] = (field_start, pos)
        if pos < n and line[pos] == ",":
            pos += 1
            continue
        break
    ts: int | None = None
    rest = line[pos:].strip()
    if rest:
        try:
            ts = int(rest)
        except ValueError:
            raise LineSyntaxError(f"timestamp {rest[:40]!r} is not an integer") from None
    return measurement, tags, fields, ts


def _field_value(key: str, text: str) -> object:
    if not text:
        raise LineSyntaxError(f"field {key!r} has no value")
    last = text[-1]
    if last in "iu" and text[:-1].lstrip("-").isdigit():
        number = int(text[:-1])
        if last == "u" and number < 0:
            raise LineSyntaxError(f"field {key!r}: unsigned integer is negative")
        return float(number)
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    try:
        value = float(text)
    except ValueError:
        raise LineSyntaxError(f"field {key!r}: {text[:40]!r} is not a number, string or boolean") from None
    if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
        raise LineSyntaxError(f"field {key!r}: {text!r} is not a line protocol number")
    return value


class LineProtocolFormat(VendorFormat):
    """InfluxDB line protocol, one point per line, several lines per message."""

    name = "influx_line"
    Options = LineProtocolOptions
    time_unit = "ns"

    def decode_message(self, batch: MessageBatch, i: int, payload: bytes, now_us: float, rows: Rows,
                       rejections: list[Rejection]) -> None:
        # a UTF-8 BOM opening the body is no part of the first line's measurement (it was: the metric became
        # "\ufefftemperature", so that reading was quarantined unknown_metric); the line's row keeps it (as sent)
        bom = payload[:3] == codecs.BOM_UTF8
        body = payload[3:] if bom else payload
        try:
            lines = body.decode("utf-8").split("\n")
            any_point = False
        except UnicodeDecodeError:  # rare: only then is each line decoded on its own
            lines, not_utf8 = _lines_of_bad_utf8(body)
            if bom:
                not_utf8 = [(j, codecs.BOM_UTF8 + raw if j == 0 else raw, why) for j, raw, why in not_utf8]
            for j, raw_line, why in not_utf8:  # the line refused, its neighbours kept
                rejections.append(self.reject(batch, i, Reason.INVALID_UTF8,
                                              f"line {j + 1} is not UTF-8: {why}"[:300], raw_line, j))
            any_point = bool(not_utf8)
        opts = self.options
        scale = _PRECISION_US[opts.precision]
        lat_key, lon_key = opts.position_keys
        for j, line in enumerate(lines):
            line = line.rstrip("\r")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            any_point = True
            # every reading of the line, and each of its rejections, is quarantined as the line as sent (without
            # the line break, which is layout). A line's rejections for one reason are one row naming each field
            # (quality/same_part.py), so a line of 30,000 bad fields is a row per reason, not a row per field
            # (hostile33 had each later field re-encoded as a line of its own: not what was sent, product47)
            raw = line.encode() if j or not bom else codecs.BOM_UTF8 + line.encode()
            try:
                measurement, tags, fields, ts = parse_line(line)
            except LineSyntaxError as exc:
                rejections.append(self.reject(batch, i, Reason.MALFORMED, f"line {j + 1}: {exc}", raw, j))
                continue
            sensor = next((tags[t] for t in opts.sensor_tags if t in tags), None)
            if sensor is None:
                rejections.append(self.reject(batch, i, Reason.MISSING_FIELD,
                                              f"line {j + 1}: none of the tags {opts.sensor_tags} names the sensor", raw, j))
                continue
            ts_us = now_us if ts is None else ts * scale
            lat = _position(fields.get(lat_key, tags.get(lat_key)))
            lon = _position(fields.get(lon_key, tags.get(lon_key)))
            unit = tags.get(opts.unit_tag)
            for key, value in fields.items():
                if key == lat_key or key == lon_key:
                    continue
                if type(value) is not float:
                    if opts.non_numeric == "reject":  # the line as sent (it was re-encoded JSON {key: value})
                        rejections.append(self.reject(batch, i, Reason.BAD_TYPE, f"line {j + 1}: {key!r} is "
                                                      f"{type(value).__name__}, not a number", raw, j))
                    continue
                if opts.metric_from == "measurement_field":
                    metric = f"{measurement}_{key}"
                else:
                    metric = measurement if key == "value" else key
                if len(sensor) > 128 or len(metric) > 128:
                    # the reason every other format and validation give: an over-long id is bad_sensor_id
                    long_id = len(sensor) > 128
                    rejections.append(self.reject(batch, i, Reason.BAD_SENSOR_ID if long_id else Reason.BAD_TYPE,
                                                  f"line {j + 1}: {'sensor id' if long_id else 'metric'} longer "
                                                  "than 128 characters", raw, j))
                    continue
                rows.add(i, j, sensor, metric, ts_us, value, self.unit_for(key, unit), lat, lon, raw)
        if not any_point:
            raise DecodeFailure(Reason.EMPTY_PAYLOAD, "no points (only blank or comment lines)")


def _lines_of_bad_utf8(payload: bytes) -> tuple[list[str], list[tuple[int, bytes, str]]]:
    """The lines of a payload that is not UTF-8 throughout, each decoded on its own: (the lines,
    with ``""`` for each that is not UTF-8; (index, its bytes as received, why) of those).

    Splitting the bytes at ``\\n`` gives the same lines as splitting the decoded text would: no
    byte of a multi-byte UTF-8 sequence is below 0x80. A comment line is skipped as ever, whatever
    its bytes. Before, one bad byte in one line quarantined the whole message (``input35``)."""
    lines: list[str] = []
    bad: list[tuple[int, bytes, str]] = []
    for j, raw in enumerate(payload.split(b"\n")):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            lines.append("")
            if not raw.lstrip().startswith(b"#"):
                bad.append((j, raw.rstrip(b"\r"), str(exc)))
    return lines, bad


def _position(value: object) -> float | None:
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        try:
            v = float(value)
        except ValueError:
            return math.nan
        return v
    return None
