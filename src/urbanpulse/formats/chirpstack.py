"""ChirpStack v4 integration events, JSON marshaler (``chirpstack_v4``), as in its "Event types" docs.

``up`` events: ``{"deduplicationId", "time", "deviceInfo": {"devEui", "deviceName", "tags"...},
"fPort", "data", "object": {...}, "rxInfo": [...], "txInfo": {...}}``. Each numeric field of
``object`` (the device profile's codec output; nested objects flatten to ``a_b``) is one
reading at ``time``. ``status`` events carry ``batteryLevel`` (percent): stored as ``battery``.
Other events (join, ack, txack, log, location, integration) are not readings and are skipped;
the event type comes from the MQTT topic (``.../event/<type>``) or, without one, from the keys.
An ``up`` without ``object`` is rejected: configure a codec in the device profile.

Options: sensor id from ``devEui`` (default) or ``deviceName``; ``time`` is the event time.
The rxInfo gateway locations are the gateways', not the device's, so they are not a position.
"""

from __future__ import annotations

from typing import Literal

from urbanpulse.formats.as_sent import FieldPath
from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.lorawan import numeric_leaves
from urbanpulse.formats.vendor import DecodeFailure, FormatOptions, Rows, VendorFormat, as_number, parse_time
from urbanpulse.model import Reason, Rejection


class ChirpstackOptions(FormatOptions):
    """Where the sensor id comes from in a ChirpStack event."""

    sensor_id: Literal["devEui", "deviceName"] = "devEui"


class ChirpstackV4Format(VendorFormat):
    """ChirpStack v4 ``up`` and ``status`` events (MQTT integration, JSON marshaler; HTTP integration)."""

    name = "chirpstack_v4"
    Options = ChirpstackOptions
    time_unit = "RFC 3339"

    def decode_message(self, batch: MessageBatch, i: int, payload: bytes, now_us: float, rows: Rows,
                       rejections: list[Rejection]) -> None:
        msg = self.parse_json(payload)
        if not isinstance(msg, dict):
            raise DecodeFailure(Reason.NOT_AN_OBJECT, f"a ChirpStack event is a JSON object, got {type(msg).__name__}")
        topic = batch.topics[i] if batch.topics is not None else None
        event = topic.rsplit("/", 1)[-1] if topic and "/event/" in topic else None
        if event is None:
            event = "up" if ("object" in msg or "fPort" in msg or "data" in msg) else \
                "status" if "batteryLevel" in msg else "other"
        if event not in ("up", "status"):
            if "deviceInfo" in msg or event != "other":
                return  # join, ack, txack, log, location, integration: not readings
            raise DecodeFailure(Reason.MISSING_FIELD, "no `deviceInfo`: not a ChirpStack v4 event")
        info = msg.get("deviceInfo")
        if not isinstance(info, dict):
            raise DecodeFailure(Reason.MISSING_FIELD, "no `deviceInfo` object")
        sensor = info.get(self.options.sensor_id)
        if not isinstance(sensor, str) or not sensor or len(sensor) > 128:
            raise DecodeFailure(Reason.BAD_SENSOR_ID, f"deviceInfo has no usable {self.options.sensor_id}")
        ts_us = parse_time(msg.get("time")) if isinstance(msg.get("time"), str) else None
        if ts_us is None:
            raise DecodeFailure(Reason.BAD_TIMESTAMP, f"`time` is not an RFC 3339 time: {msg.get('time')!r}"[:200])
        if event == "status":
            level = msg.get("batteryLevel")
            if level is None or msg.get("batteryLevelUnavailable") or msg.get("externalPowerSource"):
                return
            number = as_number(level)
            if number is None:
                raise DecodeFailure(Reason.BAD_TYPE, "`batteryLevel` is not a number")
            rows.add(i, -1, sensor, "battery", ts_us, number, "%")
            return
        data = msg.get("object")
        if data is None:
            raise DecodeFailure(Reason.MISSING_FIELD,
                                "uplink has no decoded `object`: configure a codec in the device profile")
        if not isinstance(data, dict):
            raise DecodeFailure(Reason.BAD_TYPE, "`object` is not a JSON object")
        for j, (key, value, keys) in enumerate(numeric_leaves(data)):
            path = FieldPath(("object",), keys, {key: value})  # quarantined as sent (formats/as_sent.py)
            number = as_number(value)
            if number is None:
                self.non_numeric(batch, i, j, key, value, rejections, path)
                continue
            rows.add(i, j, sensor, key[:128], ts_us, number, self.unit_for(key, None), None, None, path)
