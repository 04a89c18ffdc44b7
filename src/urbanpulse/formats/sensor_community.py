"""Sensor.Community (formerly luftdaten.info) push JSON (``sensor_community``).

What an airrohr station sends to "Send data to custom API" (and to api.sensor.community):
``{"esp8266id": "12331981", "software_version": "NRZ-2020-129", "sensordatavalues":
[{"value_type": "SDS_P1", "value": "0.40"}, ...]}``. Values are decimal strings. The message
has no timestamp: the time it was received is the event time (a ``timestamp`` element, as some
gateways add, is used when present). The sensor id is ``esp8266-<esp8266id>`` (the firmware's
own ``X-Sensor`` header value); value types map through the vendor-name table (``SDS_P1`` ->
pm10, ``SDS_P2`` -> pm2_5, ``BME280_temperature`` -> temperature, ...); BME280/BMP280 pressures
are Pa (converted to hPa). Diagnostics (``samples``, ``min_micro``, ``max_micro``, ``signal``,
``interval``) are not readings; ``GPS_lat``/``GPS_lon`` are the position.
"""

from __future__ import annotations

import math

from pydantic import Field

from urbanpulse.formats.as_sent import FieldPath
from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.vendor import DecodeFailure, FormatOptions, Rows, VendorFormat, as_number, parse_time
from urbanpulse.model import Reason, Rejection


#: where a push's readings are: each item of this array is one (quarantined as sent)
_VALUES = ("sensordatavalues",)


class SensorCommunityOptions(FormatOptions):
    """Sensor id prefix, ignored diagnostics and units of the value types."""

    sensor_prefix: str = "esp8266-"
    ignore: list[str] = Field(default_factory=lambda: ["samples", "min_micro", "max_micro", "signal", "interval",
                                                       "GPS_height", "GPS_date", "GPS_time"])
    units: dict[str, str] = Field(default_factory=lambda: {"BME280_pressure": "Pa", "BMP280_pressure": "Pa",
                                                           "BMP_pressure": "Pa"})


class SensorCommunityFormat(VendorFormat):
    """Sensor.Community / airrohr push messages."""

    name = "sensor_community"
    Options = SensorCommunityOptions
    time_unit = "receive time"

    def decode_message(self, batch: MessageBatch, i: int, payload: bytes, now_us: float, rows: Rows,
                       rejections: list[Rejection]) -> None:
        msg = self.parse_json(payload)
        if not isinstance(msg, dict):
            raise DecodeFailure(Reason.NOT_AN_OBJECT, f"a push message is a JSON object, got {type(msg).__name__}")
        chip = msg.get("esp8266id", msg.get("esp32id"))
        if isinstance(chip, int) and not isinstance(chip, bool):
            chip = str(chip)
        if not isinstance(chip, str) or not chip or len(chip) > 100:
            raise DecodeFailure(Reason.BAD_SENSOR_ID, "`esp8266id` is missing or not text")
        sensor = self.options.sensor_prefix + chip
        values = msg.get("sensordatavalues")
        if not isinstance(values, list):
            raise DecodeFailure(Reason.MISSING_FIELD, "`sensordatavalues` (an array) is missing")
        ts_us = now_us
        if "timestamp" in msg:
            parsed = parse_time(msg["timestamp"]) if isinstance(msg["timestamp"], str) else None
            if parsed is None:
                raise DecodeFailure(Reason.BAD_TIMESTAMP, f"`timestamp` is not a time with an offset: {msg['timestamp']!r}"[:200])
            ts_us = parsed
        ignore = set(self.options.ignore)
        items: list[tuple[int, str, object]] = []
        lat = lon = None
        for j, entry in enumerate(values):
            if not isinstance(entry, dict) or not isinstance(entry.get("value_type"), str):
                rejections.append(self.reject(batch, i, Reason.BAD_TYPE,
                                              f"sensordatavalues[{j}] has no text `value_type`",
                                              self.as_sent(payload, FieldPath(_VALUES, (j,), entry)), j))
                continue
            kind = entry["value_type"]
            if kind in ("GPS_lat", "GPS_lon"):
                number = _decimal(entry.get("value"))
                if kind == "GPS_lat":
                    lat = number
                else:
                    lon = number
                continue
            if kind in ignore:
                continue
            items.append((j, kind, entry))
        for j, kind, entry in items:
            value = entry.get("value")
            path = FieldPath(_VALUES, (j,), entry)  # the item quarantined as sent (formats/as_sent.py)
            number = _decimal(value)
            if number is None:
                rejections.append(self.reject(batch, i, Reason.BAD_TYPE,
                                              f"{kind}: value {value!r} is not a decimal number"[:200],
                                              self.as_sent(payload, path), j))
                continue
            if len(kind) > 128:
                continue
            rows.add(i, j, sensor, kind, ts_us, number, self.unit_for(kind, None), lat, lon, path)


def _decimal(value: object) -> float | None:
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    number = as_number(value)
    return None if number is None else number if not math.isnan(number) else number
