"""The API's port answers from the start of `urbanpulse run`; the full app is built once the
process is not busy (api/interim.py, runner.py; benchmarks/README.md ``spawn16``).

Until the full app is in: ``GET /metrics`` answers exactly what the full app answers (the same
text for any ``name[]`` filter), ``GET /health`` 503 ``starting``, and every other request 503
``starting`` with ``Retry-After``, whatever its method, path, body or key: nothing is read or
changed. Once the full app is set, every request gets the full app's own answer. Shown on the
ASGI apps (hypothesis over requests) and on a real `urbanpulse run` against PostgreSQL (no timing:
the build is held back by configuration, not by a race).
"""

from __future__ import annotations

import asyncio
import gc
import json
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from urbanpulse.api.app import create_app
from urbanpulse.api.exposition import render
from urbanpulse.api.interim import RETRY_AFTER_S, ApiWhileBuilding, metric_names
from urbanpulse.metrics import IngestMetrics


class _Service:
    """What the two apps read of a service for the requests below: its metrics, health and settings
    (the full app's routes that need the database are not asked for here, only refused)."""

    def __init__(self) -> None:
        self.metrics = IngestMetrics()
        for source in ("kafka", "mqtt"):
            self.metrics.stored.labels(source).inc(5)
            self.metrics.received.labels(source).inc(6)
        self.metrics.batch_stage.labels("write").observe(0.02)
        self.metrics.tally["stored"] = 10
        self.supervisors: list[Any] = []
        self.settings = SimpleNamespace(api=SimpleNamespace(open_data=False, max_body_bytes=1024 * 1024))
        self.health_calls = 0

    async def health(self) -> dict[str, object]:
        self.health_calls += 1
        return {"status": "ok", "storage_mode": "postgres", "database": {"ok": True}, "brokers": {},
                "counts": dict(self.metrics.tally)}


SERVICE = _Service()
FULL = create_app(SERVICE)
SAMPLE_NAMES = sorted({line.split("{")[0].split(" ")[0] for line in render(SERVICE.metrics.registry).decode().splitlines()
                       if line and not line.startswith("#")})
PATHS = sorted({*FULL.openapi()["paths"], "/", "/docs", "/openapi.json"})
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


async def _ask(app: Any, method: str, url: str, **kw: Any) -> httpx.Response:  # noqa: ANN401
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        return await client.request(method, url, **kw)


def ask(app: Any, method: str, url: str, **kw: Any) -> httpx.Response:  # noqa: ANN401
    return asyncio.run(_ask(app, method, url, **kw))


def _metrics_url(names: list[str], encode: bool) -> str:
    if not names:
        return "/metrics"
    key = "name%5B%5D" if encode else "name[]"
    return "/metrics?" + "&".join(f"{key}={quote(n)}" for n in names)


def test_the_sample_names_are_there() -> None:
    assert "urbanpulse_readings_stored_total" in SAMPLE_NAMES and len(PATHS) > 20


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(st.one_of(st.sampled_from(SAMPLE_NAMES), st.text(max_size=12)), max_size=5),
       encode=st.booleans())
def test_metrics_meanwhile_is_exactly_the_full_apps(names: list[str], encode: bool) -> None:
    url = _metrics_url(names, encode)
    interim, full = ask(ApiWhileBuilding(SERVICE), "GET", url), ask(FULL, "GET", url)
    assert interim.status_code == full.status_code == 200
    assert interim.content == full.content
    assert interim.headers["content-type"] == full.headers["content-type"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(METHODS),
       path=st.one_of(st.sampled_from(PATHS), st.text(alphabet="abcdefghijklmnop/_-{}", max_size=20).map("/".__add__)),
       body=st.one_of(st.none(), st.binary(max_size=64)),
       key=st.sampled_from([None, "upk_0123456789.abcdef", "garbage"]))
def test_every_other_request_is_refused_with_retry_after_and_changes_nothing(
        method: str, path: str, body: bytes | None, key: str | None) -> None:
    if method == "GET" and path in ("/metrics", "/health"):
        return
    service = _Service()
    before = dict(service.metrics.tally)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = ask(ApiWhileBuilding(service), method, path, content=body, headers=headers)
    assert r.status_code == 503
    assert r.headers["retry-after"] == str(RETRY_AFTER_S)
    if method != "HEAD":
        assert r.json()["error"] == "starting" and "retry" in r.json()["detail"].lower()
    assert service.health_calls == 0 and dict(service.metrics.tally) == before


def test_health_meanwhile_is_503_starting_with_the_counts() -> None:
    r = ask(ApiWhileBuilding(SERVICE), "GET", "/health")
    assert r.status_code == 503 and r.headers["retry-after"] == str(RETRY_AFTER_S)
    body = r.json()
    assert body["status"] == "starting" and body["counts"] == {"stored": 10} and body["brokers"] == {}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(METHODS), path=st.sampled_from([*PATHS, "/nowhere", "/metrics?name[]=x"]))
def test_once_built_every_request_gets_the_full_apps_answer(method: str, path: str) -> None:
    if "{" in path:  # a template: the route with a made-up id (refused for its missing key, not found ...)
        path = path.replace("{", "x").replace("}", "")
    gate = ApiWhileBuilding(SERVICE)
    gate.app = FULL
    via_gate, direct = ask(gate, method, path), ask(FULL, method, path)
    assert (via_gate.status_code, via_gate.content) == (direct.status_code, direct.content)


@pytest.mark.parametrize(("query", "names"), [
    (b"", None), (b"name[]=a", ["a"]), (b"name%5B%5D=a&name[]=b", ["a", "b"]), (b"name[]=", [""]),
    (b"other=1", None), (b"name[]=%C3%A9", ["\u00e9"]),
])
def test_metric_names_are_read_as_the_full_app_reads_them(query: bytes, names: list[str] | None) -> None:
    assert metric_names(query) == names


def test_until_not_busy_returns_at_the_bound_when_always_busy_and_early_when_idle() -> None:
    from urbanpulse.runner import until_not_busy

    async def go() -> None:
        await until_not_busy(0.3, below_cores=0.0, window_s=0.1)  # never below 0 cores: the bound ends it
        await until_not_busy(600, below_cores=1e9, window_s=0.05)  # always below: the first window ends it

    asyncio.run(go())


def test_the_cli_leaves_the_collector_on() -> None:
    """`urbanpulse` imports with the collector off; whatever the command, it is on again after."""
    from urbanpulse.cli import main

    assert gc.isenabled()
    assert main(["plugins"]) == 0
    assert gc.isenabled()


# -- a real `urbanpulse run` -------------------------------------------------------------------

pg = pytest.mark.integration


def _config(dsn: str, **api: Any) -> dict[str, Any]:  # noqa: ANN401
    return {"database": {"dsn": dsn, "storage_mode": "postgres"}, "log_level": "INFO",
            "kafka": {"enabled": False}, "mqtt": {"enabled": False}, "detection": {"enabled": False},
            "api": dict(api)}


async def _count(dsn: str, table: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


@pg
def test_urbanpulse_run_answers_meanwhile_and_refuses_keyed_requests(fresh_db: str, tmp_path) -> None:
    """Held back by configuration (never 'not busy', a bound of 10 minutes), the interim answers
    stay: /metrics as the full app's, /health 503 starting, an ingest with a valid key refused and
    nothing stored; SIGTERM stops the service cleanly meanwhile."""
    from service_process import ServiceProcess

    svc = ServiceProcess(_config(fresh_db, build_defer_s=600, build_below_cores=0), tmp_path)
    svc.start(require_healthy=False, full_api=False)
    try:
        health = svc.health()
        assert health.status_code == 503 and health.json()["status"] == "starting"
        assert health.headers["retry-after"] == str(RETRY_AFTER_S)
        metrics = httpx.get(svc.url + "/metrics", timeout=5)
        assert metrics.status_code == 200 and "# TYPE urbanpulse_readings_stored_total counter" in metrics.text
        reading = {"sensor_id": "s-1", "metric": "temperature", "value": 20.5, "unit": "C",
                   "ts": "2026-12-01T10:00:00Z"}
        refused = httpx.post(svc.url + "/ingest", content=json.dumps(reading), timeout=5,
                             headers={**svc.auth("ingest"), "content-type": "application/json"})
        assert refused.status_code == 503 and refused.json()["error"] == "starting"
        for method, path in (("POST", "/keys"), ("GET", "/alerts"), ("DELETE", "/sensors/s-1"), ("GET", "/docs")):
            r = httpx.request(method, svc.url + path, headers=svc.auth("admin"), timeout=5)
            assert r.status_code == 503 and r.headers["retry-after"] == str(RETRY_AFTER_S), (method, path)
        assert asyncio.run(_count(fresh_db, "readings")) == 0
        assert svc.terminate(60) == 0
    finally:
        svc.stop_quietly()


@pg
def test_urbanpulse_run_builds_the_full_api_at_the_bound_and_serves_it(fresh_db: str, tmp_path) -> None:
    """Always 'busy' by configuration, the full API comes at the bound (0.5 s here): then /health
    is 200 and keyed endpoints answer as always (401 without a key, 200 with one)."""
    from service_process import ServiceProcess

    svc = ServiceProcess(_config(fresh_db, build_defer_s=0.5, build_below_cores=0), tmp_path).start()
    try:
        assert svc.health().json()["status"] == "ok"
        assert httpx.get(svc.url + "/keys", timeout=5).status_code == 401
        assert httpx.get(svc.url + "/keys", headers=svc.auth("admin"), timeout=5).status_code == 200
        assert "API complete" in svc.log_tail()
        assert svc.terminate(60) == 0
    finally:
        svc.stop_quietly()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pg
def test_a_failed_api_build_stops_the_service_with_its_error(fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the full app cannot be built, the service does not go on without its API: it stops cleanly,
    `run_service` raises the build's error (so `urbanpulse run` exits non-zero with it) and the port
    is closed. No configuration makes `create_app` fail for real, so the failure is injected."""
    import urbanpulse.runner as runner
    from urbanpulse.config import load_settings

    def broken_build(service: Any) -> Any:  # noqa: ANN401
        raise RuntimeError("injected: the API cannot be built")

    monkeypatch.setattr(runner, "_full_app", broken_build)
    port = _free_port()
    settings = load_settings(None, **_config(fresh_db, host="127.0.0.1", port=port, build_defer_s=0))
    with pytest.raises(RuntimeError, match="injected: the API cannot be built"):
        asyncio.run(asyncio.wait_for(runner.run_service(settings), 60))
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
