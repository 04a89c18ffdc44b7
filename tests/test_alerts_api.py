"""The alert HTTP API against a real PostgreSQL: REST through httpx's ASGI transport, the SSE
stream through a real uvicorn server on a free port (streaming needs a real socket)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import uvicorn

import services
from urbanpulse.alerts.inputs import ClosedWindowsRef, Detections
from urbanpulse.alerts.model import AlertEvent
from urbanpulse.alerts.service import AlertService
from urbanpulse.alerts.settings import AlertSettings
from urbanpulse.api.app import build_app
from urbanpulse.auth.keys import KeyStore

pytestmark = pytest.mark.integration

MIN = 60_000_000
T0 = 1_700_000_000_000_000


class Harness:
    """A migrated database, a started AlertService and the API app without an ingest service;
    the client sends an operator key made in the database (as `urbanpulse keys create` does)."""

    def __init__(self, pool: asyncpg.Pool, svc: AlertService, key: str) -> None:
        self.pool = pool
        self.svc = svc
        self.key = key
        self.auth = {"Authorization": f"Bearer {key}"}
        self.app = build_app(alerts=svc, keys=KeyStore(pool))
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test",
                                        headers={"Authorization": f"Bearer {key}"})

    async def batch(self, detections: Detections | None = None, closed: ClosedWindowsRef | None = None,
                    publish: bool = True) -> list[AlertEvent]:
        """What the pipeline does per batch: process, apply in a transaction, publish after COMMIT."""
        changes = self.svc.manager.process(detections, closed)
        async with self.pool.acquire() as conn, conn.transaction():
            events = await self.svc.store.apply(conn, changes)
        if publish:
            self.svc.publish(events)
        return events


def det(*rows: tuple) -> Detections:
    return Detections.of([{"slot": s, "ts_us": t, "detector": d, "score": 0.9, "value": 400.0} for s, t, d in rows])


@pytest.fixture
async def h(fresh_db: str) -> AsyncIterator[Harness]:
    pool = await services.open_migrated_pool(fresh_db, min_size=1, max_size=6, prepared=False)
    svc = AlertService(AlertSettings(resolve_after_windows=1, sse_keepalive_s=0.3, sse_poll_s=0.2))
    await svc.start(pool)
    svc.manager.assign([0, 1, 2], [10, 11, 12], ["station-a", "station-b", "kerb-1"], ["pm2_5", "no2", "speed"])
    key = (await KeyStore(pool).create("ana (operations)", "operator")).secret
    harness = Harness(pool, svc, key)
    try:
        yield harness
    finally:
        await harness.client.aclose()
        await svc.stop()
        await pool.close()


def assert_detail(resp: httpx.Response, status: int, *words: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    detail = body["detail"]
    assert isinstance(detail, str) and isinstance(body["error"], str)
    for w in words:
        assert w in detail, detail


# -- REST ----------------------------------------------------------------------------------


async def test_list_get_ack_resolve(h: Harness):
    await h.batch(det((0, T0, "spike"), (1, T0, "flatline"), (2, T0, "spike")))
    r = await h.client.get("/alerts")
    assert r.status_code == 200
    body = r.json()
    assert len(body["items"]) == 3 and body["next_cursor"] is None
    first = body["items"][-1]
    assert first["sensor_id"] == "station-a" and first["state"] == "open" and first["triggers"][0]["value"] == 400.0

    r = await h.client.post(f"/alerts/{first['id']}/ack", json={"by": "ana", "note": "driving there"})
    assert r.status_code == 200 and r.json()["state"] == "acknowledged" and r.json()["acknowledged_by"] == "ana"
    r = await h.client.post(f"/alerts/{first['id']}/resolve")  # no body
    assert r.status_code == 200 and r.json()["state"] == "resolved" and r.json()["resolved_by"] == "ana (operations)"
    assert r.json()["note"] == "driving there"
    r = await h.client.get(f"/alerts/{first['id']}")
    assert r.json()["state"] == "resolved"
    assert h.svc.manager.get_open(10, "spike") is None


async def test_second_spike_updates_the_open_alert_seen_through_the_api(h: Harness):
    await h.batch(det((0, T0, "spike")))
    await h.batch(det((0, T0 + MIN, "spike")))
    items = (await h.client.get("/alerts", params={"sensor": "station-a"})).json()["items"]
    assert len(items) == 1 and items[0]["trigger_count"] == 2


async def test_filters_and_pagination(h: Harness):
    await h.batch(det((0, T0, "spike"), (1, T0 + MIN, "flatline"), (2, T0 + 2 * MIN, "spike")))
    await h.batch(closed=ClosedWindowsRef.of([2], [T0 + 5 * MIN], [T0 + 6 * MIN]))  # kerb-1 resolved
    get = h.client.get
    assert [i["sensor_id"] for i in (await get("/alerts", params={"state": "resolved"})).json()["items"]] == ["kerb-1"]
    assert len((await get("/alerts", params={"state": "open,acknowledged"})).json()["items"]) == 2
    assert len((await get("/alerts", params={"detector": "flatline"})).json()["items"]) == 1
    assert len((await get("/alerts", params={"sensor": "station-*"})).json()["items"]) == 2
    assert len((await get("/alerts", params={"metric": "speed", "severity": "warning"})).json()["items"]) == 1
    assert len((await get("/alerts", params={"flapping": "false"})).json()["items"]) == 3
    since = datetime.fromtimestamp((T0 + MIN) / 1e6, timezone.utc).isoformat()
    assert len((await get("/alerts", params={"since": since})).json()["items"]) == 2
    until = "2023-11-14T22:14:00Z"  # T0 + 40 s
    assert len((await get("/alerts", params={"until": until})).json()["items"]) == 1
    page = (await get("/alerts", params={"limit": 2})).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = (await get("/alerts", params={"limit": 2, "cursor": page["next_cursor"]})).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert rest["items"][0]["id"] < page["items"][-1]["id"]


async def test_bad_requests_get_4xx_with_a_message_that_says_what_to_do(h: Harness):
    await h.batch(det((0, T0, "spike")))
    (alert,) = (await h.client.get("/alerts")).json()["items"]
    c = h.client
    assert_detail(await c.get("/alerts/424242"), 404, "no alert with id 424242", "GET /alerts")
    assert_detail(await c.get("/alerts/abc"), 422, "path parameter alert_id", "the alert's id")
    assert_detail(await c.get("/alerts/0"), 422, "path parameter alert_id", "greater than or equal to 1")
    assert_detail(await c.post("/alerts/424242/ack"), 404, "no alert with id 424242")
    assert_detail(await c.post(f"/alerts/{alert['id']}/ack", content=b"{not json",
                               headers={"content-type": "application/json"}), 422, "not valid JSON")
    assert_detail(await c.post(f"/alerts/{alert['id']}/ack", json={"who": "x"}), 422, "body field who",
                  "not a known field")
    assert_detail(await c.post(f"/alerts/{alert['id']}/ack", json={"by": 5}), 422, "body field by",
                  "valid string")
    assert (await c.post(f"/alerts/{alert['id']}/ack")).status_code == 200
    assert_detail(await c.post(f"/alerts/{alert['id']}/ack"), 409, "already acknowledged", "/resolve")
    assert (await c.post(f"/alerts/{alert['id']}/resolve")).status_code == 200
    assert_detail(await c.post(f"/alerts/{alert['id']}/resolve"), 409, "already resolved")
    assert_detail(await c.post(f"/alerts/{alert['id']}/ack"), 409, "resolved", "cannot be acknowledged")
    assert_detail(await c.get("/alerts", params={"state": "closed"}), 422,
                  "query parameter state", "open, acknowledged, resolved")
    assert_detail(await c.get("/alerts", params={"severity": "urgent"}), 422, "info, warning, critical")
    assert_detail(await c.get("/alerts", params={"detector": "magic"}), 422, "query parameter detector")
    assert_detail(await c.get("/alerts", params={"since": "yesterday"}), 422, "ISO 8601", "'yesterday' is not valid",
                  "2024-05-01T08:00:00Z")
    assert_detail(await c.get("/alerts", params={"limit": "0"}), 422, "query parameter limit", "1..1000")
    assert_detail(await c.get("/alerts", params={"limit": "5000"}), 422, "query parameter limit", "1..1000")
    assert_detail(await c.get("/alerts", params={"limit": "ten"}), 422, "valid integer")
    assert_detail(await c.get("/alerts", params={"cursor": "garbage!"}), 422, "next_cursor")
    assert_detail(await c.get("/alerts", params={"flapping": "maybe"}), 422, "query parameter flapping")
    assert_detail(await c.get("/alerts", params={"sensr": "x"}), 422, "unknown query parameter", "sensor")
    assert_detail(await c.get("/alerts/stream", headers={"Last-Event-ID": "x"}), 422, "Last-Event-ID")
    r = await c.get("/alerts", params={"since": "2024-01-02T00:00:00Z", "until": "2024-01-01T00:00:00Z"})
    assert r.status_code == 200 and r.json()["items"] == []  # filters apply independently; nothing matches


async def test_maintenance_endpoints_mute_and_unmute(h: Harness):
    start = datetime.fromtimestamp(T0 / 1e6, timezone.utc)
    r = await h.client.post("/maintenance", json={"sensor": "station-*", "starts_at": start.isoformat(),
                                                  "ends_at": (start + timedelta(hours=1)).isoformat(),
                                                  "reason": "filter change"})
    assert r.status_code == 201, r.text
    win = r.json()
    assert win["sensor"] == "station-*" and win["source"] == "api" and win["starts_at"] == "2023-11-14T22:13:20Z"
    assert (await h.client.get("/maintenance")).json()["items"] == [win]
    assert await h.batch(det((0, T0 + MIN, "spike"))) == []
    assert h.svc.manager.muted_total == 1
    assert (await h.client.delete(f"/maintenance/{win['id']}")).status_code == 204
    assert [e.kind for e in await h.batch(det((0, T0 + 2 * MIN, "spike")))] == ["opened"]
    assert_detail(await h.client.delete(f"/maintenance/{win['id']}"), 404, "no maintenance window")
    assert_detail(await h.client.post("/maintenance", json={"sensor": "x"}), 422, "body field starts_at",
                  "body field ends_at", "Field required")
    assert_detail(await h.client.post("/maintenance", json={"sensor": "x", "starts_at": "2024-01-02T00:00:00Z",
                                                            "ends_at": "2024-01-01T00:00:00Z"}), 422, "later")


async def test_service_without_alerts_answers_503_naming_the_real_switch(h: Harness):
    app = build_app(keys=h.app.state.keys)  # no alert service: detection.enabled is false
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                 headers={"Authorization": f"Bearer {h.key}"}) as c:
        r = await c.get("/alerts")
        assert_detail(r, 503, "detection.enabled: true", "URBANPULSE_DETECTION__ENABLED")
        assert "alerts.enabled" not in r.text and r.json()["error"] == "feature_disabled"


# -- SSE -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def server(h: Harness) -> AsyncIterator[str]:
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(h.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                        timeout_graceful_shutdown=1))
    task = asyncio.create_task(srv.serve())
    for _ in range(200):
        if srv.started:
            break
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        await asyncio.wait_for(task, 10)


class SseReader:
    """Reads frames from an open SSE response: events (id, event, data) and comment lines."""

    def __init__(self, resp: httpx.Response) -> None:
        self.lines = resp.aiter_lines()
        self.comments: list[str] = []

    async def next_event(self, timeout: float = 5.0) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            frame: dict[str, Any] = {}
            async for line in self.lines:
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif line == "":
                    if "id" in frame:
                        return frame
                    frame = {}
                else:
                    key, _, value = line.partition(": ")
                    frame[key] = orjson.loads(value) if key == "data" else value
            raise EOFError("stream ended")
        return await asyncio.wait_for(read(), timeout)

    async def events(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        return [await self.next_event(timeout) for _ in range(n)]


async def test_sse_streams_live_events_and_resumes_after_last_event_id(h: Harness, server: str):
    first = await h.batch(det((0, T0, "spike")))
    async with httpx.AsyncClient(base_url=server, timeout=10, headers=h.auth) as client:
        async with client.stream("GET", "/alerts/stream") as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            sse = SseReader(resp)
            await asyncio.sleep(0.3)  # connected; events from now on are streamed
            live = await h.batch(det((1, T0, "flatline")))
            ev = await sse.next_event()
            assert ev["id"] == str(live[0].id) and ev["event"] == "opened"
            assert ev["data"]["alert"]["sensor_id"] == "station-b" and ev["data"]["alert_id"] == live[0].alert_id
        more = await h.batch(det((0, T0 + MIN, "spike")))
        await h.client.post(f"/alerts/{first[0].alert_id}/ack", json={"by": "ana"})
        # reconnect with the id of the last event seen: the missed ones are replayed, in order
        async with client.stream("GET", "/alerts/stream", headers={"Last-Event-ID": str(live[0].id)}) as resp:
            sse = SseReader(resp)
            replay = await sse.events(2)
            assert [e["event"] for e in replay] == ["updated", "acknowledged"]
            assert int(replay[0]["id"]) == more[0].id
            assert replay[1]["data"]["alert"]["acknowledged_by"] == "ana"
            # then live, with no duplicate of what was replayed
            later = await h.batch(det((2, T0, "spike")))
            ev = await sse.next_event()
            assert int(ev["id"]) == later[0].id
        # the query parameter works as the header does
        async with client.stream("GET", "/alerts/stream", params={"last_event_id": 0}) as resp:
            sse = SseReader(resp)
            ids = [int(e["id"]) for e in await sse.events(5)]
            assert ids == sorted(ids) and ids[0] == first[0].id and len(set(ids)) == 5


async def test_sse_picks_up_events_committed_by_another_worker_and_sends_keepalives(h: Harness, server: str):
    async with httpx.AsyncClient(base_url=server, timeout=10, headers=h.auth) as client:
        async with client.stream("GET", "/alerts/stream") as resp:
            sse = SseReader(resp)
            await asyncio.sleep(0.3)
            # committed but never published to this process's hub (as by another worker)
            other = await h.batch(det((0, T0, "spike")), publish=False)
            ev = await sse.next_event(timeout=3)
            assert int(ev["id"]) == other[0].id
            await asyncio.sleep(0.5)
            await h.batch(det((1, T0, "spike")))
            await sse.next_event()
            assert "keep-alive" in sse.comments


async def test_sse_out_of_order_publish_is_delivered_in_id_order_without_duplicates(h: Harness, server: str):
    async with httpx.AsyncClient(base_url=server, timeout=10, headers=h.auth) as client:
        async with client.stream("GET", "/alerts/stream") as resp:
            sse = SseReader(resp)
            await asyncio.sleep(0.3)
            a = await h.batch(det((0, T0, "spike")), publish=False)
            b = await h.batch(det((1, T0, "spike")), publish=False)
            h.svc.publish(b)  # the later event reaches the hub first
            h.svc.publish(a)
            ids = [int(e["id"]) for e in await sse.events(2)]
            assert ids == [a[0].id, b[0].id]
            c = await h.batch(det((2, T0, "spike")))
            assert int((await sse.next_event())["id"]) == c[0].id


async def test_slow_sse_subscriber_is_dropped_without_blocking_publish(h: Harness):
    h.svc.hub.queue_size = 2
    sub = h.svc.hub.subscribe()
    events = [AlertEvent(i, 1, datetime.now(timezone.utc), "updated", "open", {}) for i in range(1, 6)]
    h.svc.hub.publish(events)  # returns at once although nobody reads
    assert sub.dropped.is_set() and h.svc.hub.subscribers == 0 and h.svc.hub.dropped_subscribers == 1
    got = [await sub.get(0.1), await sub.get(0.1), await sub.get(0.1)]
    assert [e.id for e in got if e] == [1, 2] and got[2] is None


async def test_flapping_alert_notifies_once_then_goes_quiet_on_webhooks(fresh_db: str):
    import threading
    from http.server import ThreadingHTTPServer

    from test_alerts_webhooks import Receiver

    from urbanpulse.alerts.settings import WebhookSettings

    rec = Receiver()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), rec.handler())
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    pool = await services.open_migrated_pool(fresh_db, min_size=1, max_size=3, prepared=False)
    svc = AlertService(AlertSettings(
        resolve_after_windows=1, flap_threshold=2, flap_window=timedelta(hours=1),
        webhooks=[WebhookSettings(url=f"http://127.0.0.1:{srv.server_address[1]}/", backoff_initial_s=0.05)]))
    try:
        await svc.start(pool)
        svc.manager.assign([0], [10], ["station-a"], ["pm2_5"])
        h = Harness(pool, svc, (await KeyStore(pool).create("ops", "viewer")).secret)
        t = T0
        await h.batch(det((0, t, "spike")))
        for _ in range(4):
            await h.batch(closed=ClosedWindowsRef.of([0], [t + MIN], [t + 2 * MIN]))
            t += 5 * MIN
            await h.batch(det((0, t, "spike")))
        await asyncio.sleep(0.5)
        await svc.stop()
        assert [a["kind"] for a in rec.accepted] == ["opened", "resolved", "reopened", "resolved", "flapping"]
        items = (await h.client.get("/alerts")).json()["items"]
        assert len(items) == 1 and items[0]["flapping"] and items[0]["reopen_count"] == 4
        await h.client.aclose()
    finally:
        await svc.stop()
        await pool.close()
        srv.shutdown()
        srv.server_close()


async def test_service_app_serves_alerts_of_service_alerts(h: Harness):
    from types import SimpleNamespace

    from urbanpulse.api.app import create_app

    app = create_app(SimpleNamespace(alerts=h.svc, pool=h.pool))  # type: ignore[arg-type]
    await h.batch(det((0, T0, "spike")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                 headers={"Authorization": f"Bearer {h.key}"}) as c:
        items = (await c.get("/alerts")).json()["items"]
        assert [i["sensor_id"] for i in items] == ["station-a"]
        assert (await c.get("/maintenance")).status_code == 200
