"""Realistic messages of every built-in format, with the readings they must become.

Used by the transport tests (each format over MQTT and Kafka into the running service), the
decode benchmark and the conformance kit's determinism check. Every sample uses catalogue
metrics with plausible values, so all its readings are valid at ``t0`` (epoch seconds).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import cbor2

#: options a format needs before it can decode the samples (CSV declares its columns)
SAMPLE_OPTIONS: dict[str, dict] = {
    "csv": {"sensor_id": "sensor", "ts": "time", "time_format": "epoch_s",
            "values": {"pm25": "pm2_5", "pm10": "pm10"}},
}


def _canonical(sensor: str, t0: float, n: int) -> bytes:
    return json.dumps([{"sensor_id": sensor, "metric": "pm2_5" if k % 2 else "temperature",
                        "ts": int((t0 - n + k) * 1000), "value": 10.0 + k % 7} for k in range(n)]).encode()


def _senml_records(sensor: str, t0: float, n: int) -> list[dict]:
    recs: list[dict] = [{"bn": f"{sensor}:", "bt": t0, "bu": "Cel", "n": "temp", "v": 20.5, "t": -(n - 1)}]
    for k in range(1, n):
        if k % 2:
            recs.append({"n": "humidity", "u": "%RH", "v": 40.0 + k % 9, "t": -(n - 1 - k)})
        else:
            recs.append({"n": "temp", "v": 20.0 + k % 5, "t": -(n - 1 - k)})
    return recs


_CBOR_LABELS = {"bn": -2, "bt": -3, "bu": -4, "n": 0, "u": 1, "v": 2, "t": 6}


def _senml(sensor: str, t0: float, n: int) -> bytes:
    return json.dumps(_senml_records(sensor, t0, n)).encode()


def _senml_cbor(sensor: str, t0: float, n: int) -> bytes:
    return cbor2.dumps([{_CBOR_LABELS[k]: v for k, v in r.items()} for r in _senml_records(sensor, t0, n)])


def _line(sensor: str, t0: float, n: int) -> bytes:
    lines = [f"air,sensor_id={sensor},site=north pm2_5={10 + k % 7}.5,pm10={30 + k % 5}i {int((t0 - n + k) * 1e9)}"
             for k in range(n // 2)]
    return "\n".join(lines).encode()


def _iso(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def _ttn(sensor: str, t0: float, n: int) -> bytes:
    return json.dumps({
        "end_device_ids": {"device_id": sensor, "application_ids": {"application_id": "city-air"},
                           "dev_eui": "0004A30B001C0530"},
        "received_at": _iso(t0),
        "uplink_message": {"f_port": 1, "frm_payload": "gkHe",
                           "decoded_payload": {"temperature": 21.5, "humidity": 48.2, "pm2_5": 12.1, "pm10": 20.4},
                           "rx_metadata": [{"gateway_ids": {"gateway_id": "gtw1"}, "time": _iso(t0 - 0.2),
                                            "rssi": -35, "snr": 5.2}],
                           "received_at": _iso(t0 - 0.1),
                           "locations": {"user": {"latitude": 52.52, "longitude": 13.405, "source": "SOURCE_REGISTRY"}}},
    }).encode()


def _chirpstack(sensor: str, t0: float, n: int) -> bytes:
    return json.dumps({
        "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d", "time": _iso(t0),
        "deviceInfo": {"tenantName": "City", "applicationName": "air", "deviceName": sensor, "devEui": sensor},
        "devAddr": "00189440", "fPort": 1, "data": "qg==",
        "object": {"temperature": 19.5, "humidity": 51.0, "pm2_5": 8.4, "pm10": 14.0},
        "rxInfo": [{"gatewayId": "0016c001f153a14c", "rssi": -36, "snr": 10.5}],
    }).encode()


def _owntracks(sensor: str, t0: float, n: int) -> bytes:
    return json.dumps({"_type": "location", "tid": sensor, "lat": 48.8583 + n * 1e-5, "lon": 2.2945,
                       "acc": 12, "batt": 76, "vel": 18, "tst": int(t0)}).encode()


def _sensor_community(sensor: str, t0: float, n: int) -> bytes:
    return json.dumps({"esp8266id": sensor, "software_version": "NRZ-2020-129", "sensordatavalues": [
        {"value_type": "SDS_P1", "value": "14.20"}, {"value_type": "SDS_P2", "value": "8.10"},
        {"value_type": "BME280_temperature", "value": "18.47"}, {"value_type": "BME280_pressure", "value": "100613.25"},
        {"value_type": "BME280_humidity", "value": "61.02"}, {"value_type": "samples", "value": "4222662"},
        {"value_type": "signal", "value": "-94"}]}).encode()


def _csv(sensor: str, t0: float, n: int) -> bytes:
    rows = ["sensor,time,pm25,pm10"] + [f"{sensor},{int(t0 - n + k)},{10 + k % 7}.5,{20 + k % 3}" for k in range(n // 2)]
    return ("\n".join(rows) + "\n").encode()


#: format -> (make(sensor, t0, n) -> payload, readings per payload for that n)
SAMPLES: dict[str, tuple[Callable[[str, float, int], bytes], Callable[[int], int]]] = {
    "json": (_canonical, lambda n: n),
    "senml": (_senml, lambda n: n),
    "senml_cbor": (_senml_cbor, lambda n: n),
    "influx_line": (_line, lambda n: 2 * (n // 2)),
    "ttn_v3": (_ttn, lambda n: 4),
    "chirpstack_v4": (_chirpstack, lambda n: 4),
    "owntracks": (_owntracks, lambda n: 2),
    "sensor_community": (_sensor_community, lambda n: 5),
    "csv": (_csv, lambda n: 2 * (n // 2)),
}


def sample(fmt: str, sensor: str, t0: float, n: int = 10) -> tuple[bytes, int]:
    """A realistic message of ``fmt`` for ``sensor`` ending at ``t0`` and its number of readings."""
    make, count = SAMPLES[fmt]
    return make(sensor, t0, n), count(n)
