"""The Things Stack v3 uplink messages (``ttn_v3``), as in its "Data Formats" documentation.

``{"end_device_ids": {"device_id", "dev_eui", "application_ids": {"application_id"}},
"received_at", "uplink_message": {"decoded_payload": {...}, "rx_metadata": [...],
"received_at", "locations": {"user": {"latitude", "longitude"}}}}``

Each numeric field of ``decoded_payload`` (the output of the device's payload formatter; nested
objects flatten to ``a_b``) is one reading of the device. Options choose the sensor id
(``device_id``, ``dev_eui`` or ``application_device`` = ``app/device``), the event time
(``uplink_received_at``: the Network Server's receive time, always present; ``gateway_time``:
the first gateway's ``time``, closer to the measurement; ``received_at``) and whether the end
device's ``locations`` (its registered or payload-derived position, not the gateway's) become
the readings' position. Other message types (join-accept, downlink events) are not readings and
are skipped; an uplink without ``decoded_payload`` is rejected: set a payload formatter.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from urbanpulse.formats.as_sent import FieldPath
from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.lorawan import numeric_leaves
from urbanpulse.formats.vendor import DecodeFailure, FormatOptions, Rows, VendorFormat, as_number, parse_time
from urbanpulse.model import Reason, Rejection

OTHER_EVENTS = ("join_accept", "downlink_ack", "downlink_nack", "downlink_sent", "downlink_failed",
                "downlink_queued", "downlink_queue_invalidated", "location_solved", "service_data")


class TtnOptions(FormatOptions):
    """Where the sensor id, time and position come from in a TTS v3 uplink."""

    sensor_id: Literal["device_id", "dev_eui", "application_device"] = "device_id"
    time_source: Literal["uplink_received_at", "gateway_time", "received_at"] = "uplink_received_at"
    use_locations: bool = Field(True, description="end device locations (user, frm-payload, ...) become the position")
    location_sources: list[str] = Field(default_factory=lambda: ["frm-payload", "user"],
                                        description="keys of uplink_message.locations tried in order")
    payload_field: Literal["decoded_payload", "normalized_payload"] = "decoded_payload"


class TtnV3Format(VendorFormat):
    """The Things Stack v3 application uplinks (MQTT, webhooks, Kafka via the integration)."""

    name = "ttn_v3"
    Options = TtnOptions
    time_unit = "RFC 3339"

    def decode_message(self, batch: MessageBatch, i: int, payload: bytes, now_us: float, rows: Rows,
                       rejections: list[Rejection]) -> None:
        msg = self.parse_json(payload)
        if not isinstance(msg, dict):
            raise DecodeFailure(Reason.NOT_AN_OBJECT, f"a TTS message is a JSON object, got {type(msg).__name__}")
        up = msg.get("uplink_message")
        if up is None:
            if any(k in msg for k in OTHER_EVENTS):
                return  # not an uplink: nothing to store
            raise DecodeFailure(Reason.MISSING_FIELD, "no `uplink_message`: not a The Things Stack v3 uplink")
        if not isinstance(up, dict):
            raise DecodeFailure(Reason.BAD_TYPE, "`uplink_message` is not an object")
        ids = msg.get("end_device_ids")
        if not isinstance(ids, dict):
            raise DecodeFailure(Reason.MISSING_FIELD, "no `end_device_ids` object")
        opts = self.options
        sensor = self._sensor(ids, opts.sensor_id)
        ts_us = self._time(msg, up, opts.time_source)
        data = up.get(opts.payload_field)
        if data is None:
            raise DecodeFailure(Reason.MISSING_FIELD,
                                f"uplink has no `{opts.payload_field}`: set a payload formatter for the device or "
                                f"application in The Things Stack")
        if not isinstance(data, dict):
            raise DecodeFailure(Reason.BAD_TYPE, f"`{opts.payload_field}` is not an object")
        lat = lon = None
        if opts.use_locations:
            lat, lon = self._position(up.get("locations"), opts.location_sources)
        container = ("uplink_message", opts.payload_field)
        for j, (key, value, keys) in enumerate(numeric_leaves(data)):
            path = FieldPath(container, keys, {key: value})  # quarantined as sent (formats/as_sent.py)
            number = as_number(value)
            if number is None:
                self.non_numeric(batch, i, j, key, value, rejections, path)
                continue
            rows.add(i, j, sensor, key[:128], ts_us, number, self.unit_for(key, None), lat, lon, path)

    @staticmethod
    def _sensor(ids: dict, how: str) -> str:
        device = ids.get("device_id")
        if how == "dev_eui":
            device = ids.get("dev_eui")
        elif how == "application_device":
            app = (ids.get("application_ids") or {}).get("application_id") if isinstance(ids.get("application_ids"), dict) else None
            device = f"{app}/{device}" if isinstance(app, str) and isinstance(device, str) else None
        if not isinstance(device, str) or not device or len(device) > 128:
            raise DecodeFailure(Reason.BAD_SENSOR_ID, f"end_device_ids has no usable {how}")
        return device

    @staticmethod
    def _time(msg: dict, up: dict, source: str) -> float:
        if source == "gateway_time":
            meta = up.get("rx_metadata")
            text = meta[0].get("time") if isinstance(meta, list) and meta and isinstance(meta[0], dict) else None
            text = text or up.get("received_at")
        elif source == "received_at":
            text = msg.get("received_at")
        else:
            text = up.get("received_at") or msg.get("received_at")
        ts = parse_time(text) if isinstance(text, str) else None
        if ts is None:
            raise DecodeFailure(Reason.BAD_TIMESTAMP, f"no RFC 3339 time for time_source {source}: {text!r}"[:200])
        return ts

    @staticmethod
    def _position(locations: object, sources: list[str]) -> tuple[float | None, float | None]:
        if not isinstance(locations, dict):
            return None, None
        for key in [*sources, *locations]:
            loc = locations.get(key)
            if isinstance(loc, dict):
                lat, lon = as_number(loc.get("latitude")), as_number(loc.get("longitude"))
                if lat is not None and lon is not None:
                    return lat, lon
        return None, None
