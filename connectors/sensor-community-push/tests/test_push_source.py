"""The Sensor.Community push source passes urbanpulse's conformance kit over real HTTP, and a
station's push decodes with the built-in sensor_community format."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from urbanpulse.formats.base import MessageBatch
from urbanpulse.plugins import SOURCE_GROUP, build_format, installed
from urbanpulse_sensor_community import PushConfig, SensorCommunityPushSource

pytest_plugins = ["urbanpulse.testing.plugin"]

# the example request of the airrohr firmware's "send to custom API" (see README)
PUSH = (b'{"esp8266id": "12331981", "software_version": "NRZ-2020-129", "sensordatavalues":['
        b'{"value_type":"SDS_P1","value":"0.40"},{"value_type":"SDS_P2","value":"0.20"},'
        b'{"value_type":"BME280_temperature","value":"20.47"},{"value_type":"BME280_pressure","value":"100613.25"},'
        b'{"value_type":"BME280_humidity","value":"69.02"},{"value_type":"samples","value":"4222662"}]}')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_registered_under_the_connectors_entry_point():
    info = installed(SOURCE_GROUP)["sensor_community_push"]
    assert info.package == "urbanpulse-sensor-community"


async def test_passes_the_source_conformance_kit(source_conformance):
    config = PushConfig(port=free_port(), ack_timeout_s=60, username="station", password="s3cret")
    url = f"http://127.0.0.1:{config.port}{config.path}"
    stations: list[asyncio.Task] = []

    async def station(body: bytes) -> None:
        """A station: POST until it gets a 2xx (airrohr sends again later; here at once)."""
        async with httpx.AsyncClient(timeout=90) as client:
            while True:
                try:
                    r = await client.post(url, content=body, headers={"X-Sensor": "esp8266-12331981"},
                                          auth=("station", "s3cret"))
                    if r.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)

    def publish(payloads: list[bytes]) -> None:
        stations.extend(asyncio.create_task(station(p)) for p in payloads)

    await source_conformance(lambda: SensorCommunityPushSource(config), publish, timeout=30)
    await asyncio.wait_for(asyncio.gather(*stations), 30)  # every station got its 200 in the end


async def test_a_push_decodes_to_readings_with_the_builtin_format():
    fmt = build_format("sensor_community")
    d = fmt.decode(MessageBatch("sensor_community_push", [PUSH], topics=["sensor_community/esp8266-12331981"]))
    assert d.columns.metric == ["pm10", "pm2_5", "temperature", "pressure", "humidity"]
    assert set(d.columns.sensor_id) == {"esp8266-12331981"}
    assert d.rejections == []


async def test_pushes_without_the_station_credentials_are_refused():
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="username and password"):
        PushConfig(port=1)
    config = PushConfig(port=free_port(), username="station", password="s3cret")
    source = SensorCommunityPushSource(config)

    class Sink:
        submitted = 0

        async def submit(self, batch, ack=None):
            Sink.submitted += 1
            ack()

        async def drain(self):
            pass

    stopping = asyncio.Event()
    task = asyncio.create_task(source.run(Sink(), stopping))
    while not source.listening:
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{config.port}{config.path}"
    async with httpx.AsyncClient() as client:
        assert (await client.post(url, content=PUSH)).status_code == 401
        assert (await client.post(url, content=PUSH, auth=("station", "wrong"))).status_code == 401
        assert (await client.post(url, content=PUSH, auth=("station", "s3cret"))).status_code == 200
    stopping.set()
    await task
    assert Sink.submitted == 1
