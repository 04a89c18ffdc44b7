"""Webhook delivery against a real local HTTP server (``http.server`` in a thread)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from urbanpulse.alerts.model import AlertEvent
from urbanpulse.alerts.settings import WebhookSettings
from urbanpulse.alerts.webhooks import WebhookNotifier, wants


class Receiver:
    """Records POSTs; answers the first ``fail_first`` of them with ``fail_status``."""

    def __init__(self, fail_first: int = 0, fail_status: int = 503) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.attempts: list[dict[str, Any]] = []
        self.accepted: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with receiver.lock:
                    receiver.attempts.append(body)
                    receiver.headers.append(dict(self.headers))
                    ok = len(receiver.attempts) > receiver.fail_first
                    if ok:
                        receiver.accepted.append(body)
                self.send_response(200 if ok else receiver.fail_status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def receiver(request) -> Iterator[tuple[Receiver, str]]:
    fail_first, fail_status = getattr(request, "param", (0, 503))
    rec = Receiver(fail_first, fail_status)
    server = ThreadingHTTPServer(("127.0.0.1", 0), rec.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def event(i: int, kind: str = "opened", severity: str = "critical", flapping: bool = False) -> AlertEvent:
    return AlertEvent(i, 100 + i, datetime(2024, 5, 1, tzinfo=timezone.utc), kind, "open",
                      {"id": 100 + i, "severity": severity, "flapping": flapping, "sensor_id": "station-a"})


def hook(url: str, **kw: Any) -> WebhookSettings:
    return WebhookSettings(url=url, backoff_initial_s=0.05, backoff_max_s=0.2, timeout_s=2, **kw)


async def wait_for(cond, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("receiver", [(2, 503)], indirect=True)
async def test_failed_attempts_are_retried_with_backoff_and_delivered_once(receiver):
    rec, url = receiver
    n = WebhookNotifier([hook(url, max_attempts=5, headers={"Authorization": "Bearer t"})])
    await n.start()
    try:
        n.enqueue([event(1)])
        await wait_for(lambda: n.stats["delivered"] == 1)
    finally:
        await n.stop()
    assert len(rec.attempts) == 3 and len(rec.accepted) == 1
    body = rec.accepted[0]
    assert body["id"] == 1 and body["kind"] == "opened" and body["alert"]["sensor_id"] == "station-a"
    assert rec.headers[-1]["x-urbanpulse-event-id"] == "1" and rec.headers[-1]["Authorization"] == "Bearer t"
    assert n.stats["retries"] == 2 and n.stats["failed"] == 0


@pytest.mark.parametrize("receiver", [(100, 503)], indirect=True)
async def test_gives_up_after_max_attempts_and_goes_on_with_the_next_event(receiver):
    rec, url = receiver
    n = WebhookNotifier([hook(url, max_attempts=3)])
    await n.start()
    try:
        n.enqueue([event(1), event(2)])
        await wait_for(lambda: n.stats["failed"] == 2)
    finally:
        await n.stop()
    assert [a["id"] for a in rec.attempts] == [1, 1, 1, 2, 2, 2]


@pytest.mark.parametrize("receiver", [(100, 400)], indirect=True)
async def test_a_rejected_event_is_not_retried(receiver):
    rec, url = receiver
    n = WebhookNotifier([hook(url, max_attempts=5)])
    await n.start()
    try:
        n.enqueue([event(1)])
        await wait_for(lambda: n.stats["failed"] == 1)
    finally:
        await n.stop()
    assert len(rec.attempts) == 1


async def test_unreachable_endpoint_never_blocks_enqueue():
    n = WebhookNotifier([hook("http://127.0.0.1:9/none", max_attempts=2)], queue_size=3)
    await n.start()
    try:
        loop = asyncio.get_running_loop()
        t = loop.time()
        n.enqueue([event(i) for i in range(1, 11)])
        assert loop.time() - t < 0.05
        assert n.stats["dropped"] >= 6  # the oldest went when the queue of 3 was full
        await wait_for(lambda: n.pending() == 0)
    finally:
        await n.stop()


async def test_events_in_order_to_several_webhooks_by_severity(receiver):
    rec, url = receiver
    rec2 = Receiver()
    from http.server import ThreadingHTTPServer as S

    s2 = S(("127.0.0.1", 0), rec2.handler())
    threading.Thread(target=s2.serve_forever, daemon=True).start()
    n = WebhookNotifier([hook(url), hook(f"http://127.0.0.1:{s2.server_address[1]}/", severities=["critical"])])
    await n.start()
    try:
        n.enqueue([event(1, severity="warning"), event(2, severity="critical"), event(3, severity="info")])
        await wait_for(lambda: n.stats["delivered"] == 3)
    finally:
        await n.stop()
        s2.shutdown()
        s2.server_close()
    assert [a["id"] for a in rec.accepted] == [1, 2]
    assert [a["id"] for a in rec2.accepted] == [2]


def test_flapping_alerts_are_not_renotified_and_updates_are_off_by_default():
    h = WebhookSettings(url="http://x/")
    assert wants(h, event(1, "reopened"))
    assert wants(h, event(2, "flapping", flapping=True))
    assert not wants(h, event(3, "reopened", flapping=True))
    assert not wants(h, event(4, "resolved", flapping=True))
    assert not wants(h, event(5, "updated"))
    assert wants(WebhookSettings(url="http://x/", events=["updated"]), event(6, "updated"))
    with pytest.raises(ValueError, match="http:// or https://"):
        WebhookSettings(url="ftp://x")
