"""The TTS webhook source passes urbanpulse's conformance kit over real HTTP; the webhook secret
is required; an uplink from The Things Stack's documentation decodes with the built-in ttn_v3."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pydantic
import pytest

from urbanpulse.formats.base import MessageBatch
from urbanpulse.plugins import SOURCE_GROUP, build_format, installed
from urbanpulse_ttn_webhook import TtnWebhookSource, WebhookConfig

pytest_plugins = ["urbanpulse.testing.plugin"]

# the uplink message example of The Things Stack's "Data Formats" documentation, shortened
UPLINK = json.dumps({
    "end_device_ids": {"device_id": "dev1", "application_ids": {"application_id": "app1"},
                       "dev_eui": "0004A30B001C0530"},
    "received_at": "2020-02-12T15:15:46.014773143Z",
    "uplink_message": {"f_cnt": 1, "frm_payload": "gkHe", "decoded_payload": {"temperature": 1.0, "luminosity": 0.64},
                       "rx_metadata": [{"gateway_ids": {"gateway_id": "gtw1"}, "time": "2020-02-12T15:15:45.787Z"}],
                       "locations": {"user": {"latitude": 37.97155556731436, "longitude": 23.72678801175413}},
                       "received_at": "2020-02-12T15:15:45.789585559Z"}}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_registered_under_the_connectors_entry_point():
    assert installed(SOURCE_GROUP)["ttn_webhook"].package == "urbanpulse-ttn-webhook"


def test_a_secret_is_required_unless_explicitly_waived():
    with pytest.raises(pydantic.ValidationError, match="secret"):
        WebhookConfig()
    assert WebhookConfig(allow_unauthenticated=True).expected_header() is None
    assert WebhookConfig(secret="x").expected_header() == "Bearer x"


async def test_passes_the_source_conformance_kit(source_conformance):
    config = WebhookConfig(port=free_port(), secret="hook-secret", ack_timeout_s=60)
    url = f"http://127.0.0.1:{config.port}{config.path}"
    senders: list[asyncio.Task] = []

    async def deliver(body: bytes) -> None:
        async with httpx.AsyncClient(timeout=90) as client:
            while True:  # the kit's at-least-once sender: again until a 2xx
                try:
                    r = await client.post(url, content=body, headers={"Authorization": "Bearer hook-secret"})
                    if r.status_code == 200:
                        return
                    assert r.status_code == 503, r.text
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)

    def publish(payloads: list[bytes]) -> None:
        senders.extend(asyncio.create_task(deliver(p)) for p in payloads)

    await source_conformance(lambda: TtnWebhookSource(config), publish, timeout=30)
    await asyncio.wait_for(asyncio.gather(*senders), 30)


async def test_wrong_secret_401_and_uplink_topic_from_its_ids():
    config = WebhookConfig(port=free_port(), secret="hook-secret")
    source = TtnWebhookSource(config)
    batches: list[MessageBatch] = []

    class Sink:
        async def submit(self, batch, ack=None):
            batches.append(batch)
            ack()

        async def drain(self):
            pass

    stopping = asyncio.Event()
    task = asyncio.create_task(source.run(Sink(), stopping))
    while not source.listening:
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{config.port}{config.path}"
    async with httpx.AsyncClient() as client:
        assert (await client.post(url, content=UPLINK)).status_code == 401
        assert (await client.post(url, content=UPLINK, headers={"Authorization": "Bearer nope"})).status_code == 401
        assert (await client.post(url, content=UPLINK, headers={"Authorization": "Bearer hook-secret"})).status_code == 200
    stopping.set()
    await task
    assert [b.topics for b in batches] == [["ttn/app1/dev1"]]
    d = build_format("ttn_v3").decode(batches[0])
    assert d.columns.sensor_id == ["dev1", "dev1"] and d.columns.metric == ["temperature", "luminosity"]
