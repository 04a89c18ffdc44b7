"""OwnTracks location messages (``owntracks``), as in the OwnTracks booklet's JSON reference.

``{"_type": "location", "lat", "lon", "tst" (epoch **seconds** of the fix), "acc", "batt",
"vel", "alt", "tid", ...}`` published to ``owntracks/<user>/<device>``. The mobile case: every
reading carries the device's position (``lat``/``lon`` of the fix) and the fix time.

Readings: the elements listed in ``fields`` (default ``batt`` -> battery in %, ``vel`` ->
speed in km/h, ``p`` -> pressure in kPa, converted to the catalogue's hPa). The sensor id is
``<user>/<device>`` from the topic (or the ``topic`` element of HTTP-mode payloads), else the
tracker id ``tid``. Other ``_type``s (lwt, transition, waypoint, card, ...) are not readings and
are skipped. With ``position_metric`` set, each location also yields a position-only reading
(metric ``position``, value 1: one fix), the first-class kind of docs/privacy.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from urbanpulse.formats.as_sent import FieldPath, MembersPath
from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.vendor import DecodeFailure, FormatOptions, Rows, VendorFormat, as_number
from urbanpulse.model import Reason, Rejection


class OwnTracksOptions(FormatOptions):
    """Which location elements are readings, and where the sensor id comes from."""

    fields: dict[str, str] = Field(default_factory=lambda: {"batt": "battery", "vel": "speed", "p": "pressure"},
                                   description="location element -> metric")
    units: dict[str, str] = Field(default_factory=lambda: {"batt": "%", "vel": "km/h", "p": "kPa"})
    sensor_id: Literal["topic", "tid"] = Field("topic", description="<user>/<device> from the topic, or tid")
    topic_prefix: str = "owntracks/"
    position_metric: str | None = Field(
        None, description="e.g. position: every location message also yields a reading of this metric, value 1 "
        "(one fix) at the fix's lat/lon, so a position without any field is stored, not lost (docs/privacy.md)")


class OwnTracksFormat(VendorFormat):
    """OwnTracks ``_type: location`` over MQTT or HTTP."""

    name = "owntracks"
    Options = OwnTracksOptions
    time_unit = "s"

    def decode_message(self, batch: MessageBatch, i: int, payload: bytes, now_us: float, rows: Rows,
                       rejections: list[Rejection]) -> None:
        msg = self.parse_json(payload)
        if not isinstance(msg, dict):
            raise DecodeFailure(Reason.NOT_AN_OBJECT, f"an OwnTracks message is a JSON object, got {type(msg).__name__}")
        kind = msg.get("_type")
        if kind != "location":
            if isinstance(kind, str):
                return  # lwt, transition, waypoint, card...: not readings
            raise DecodeFailure(Reason.MISSING_FIELD, "no `_type`: not an OwnTracks message")
        lat, lon = as_number(msg.get("lat")), as_number(msg.get("lon"))
        if lat is None or lon is None:
            raise DecodeFailure(Reason.BAD_LOCATION, "`lat` and `lon` are required numbers in a location")
        tst = msg.get("tst")
        if tst is None:
            raise DecodeFailure(Reason.MISSING_FIELD, "`tst` (epoch seconds of the fix) is required")
        seconds = as_number(tst)
        if seconds is None:
            raise DecodeFailure(Reason.BAD_TIMESTAMP, f"`tst` is not epoch seconds: {tst!r}"[:200])
        sensor = self._sensor(batch, i, msg)
        opts = self.options
        if opts.position_metric is not None:
            rows.add(i, len(opts.fields), sensor, opts.position_metric, seconds * 1e6, 1.0, None, lat, lon,
                     MembersPath((), ("lat", "lon"), {"lat": lat, "lon": lon}))  # as sent (newcomer46)
        for j, (element, metric) in enumerate(opts.fields.items()):
            if element not in msg:
                continue
            value = msg[element]
            path = FieldPath((), (element,), {element: value})  # quarantined as sent (formats/as_sent.py)
            number = as_number(value)
            if number is None:
                self.non_numeric(batch, i, j, element, value, rejections, path)
                continue
            rows.add(i, j, sensor, metric, seconds * 1e6, number, opts.units.get(element), lat, lon, path)

    def _sensor(self, batch: MessageBatch, i: int, msg: dict) -> str:
        opts = self.options
        topic = batch.topics[i] if batch.topics is not None else None
        if not (topic and topic.startswith(opts.topic_prefix)) and isinstance(msg.get("topic"), str):
            topic = msg["topic"]
        if opts.sensor_id == "topic" and topic and topic.startswith(opts.topic_prefix):
            parts = topic[len(opts.topic_prefix):].split("/")
            if len(parts) >= 2 and parts[0] and parts[1]:
                return f"{parts[0]}/{parts[1]}"[:128]
        tid = msg.get("tid")
        if isinstance(tid, str) and tid:
            return tid[:128]
        raise DecodeFailure(Reason.BAD_SENSOR_ID, "no owntracks/<user>/<device> topic and no `tid`")
