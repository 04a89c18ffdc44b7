"""Access control: API keys (stored hashed, made/listed/revoked by CLI and API), roles, the
anonymous open-data scope, and the authorization matrix built from the app's own route table.

The matrix runs every route of the real app (bound to a running IngestService on a real
PostgreSQL, served by uvicorn on a real socket so the SSE stream is covered too) for every
caller: no key, a malformed key, another scheme, an unknown key, a known id with a wrong
secret, a revoked key, and a key of each role; with anonymous open data off and on. The rule a
route is checked against is the one it declares (``urbanpulse.api.access``): a route that
declares none fails here, as does a state-changing route a viewer or anonymous caller could use.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import APIRouter, FastAPI

from services import free_port
from urbanpulse.api.access import (ALLOW_OPEN_DATA, AccessPolicy, Principal, api_routes, route_rule,
                                   route_rules)
from urbanpulse.api.app import build_app, create_app
from urbanpulse.auth.keys import KeyStore, new_token
from urbanpulse.auth.roles import Access, Role, allows
from urbanpulse.config import load_settings
from urbanpulse.errors import NotAuthenticated
from urbanpulse.service import IngestService

pytestmark = pytest.mark.integration

#: state-changing methods may only be behind these rules
CHANGING_RULES = {Access.operator, Access.admin, Access.ingest}


async def serve(app: FastAPI) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=1))
    task = asyncio.create_task(server.serve())
    for _ in range(250):
        if server.started:
            break
        await asyncio.sleep(0.02)
    return server, task, f"http://127.0.0.1:{port}"


class Stack:
    """A running IngestService (no brokers) on a fresh database, keys of every role, and the
    app served on a real socket with anonymous open data off and on."""

    def __init__(self, service: IngestService, keys: dict[str, str], revoked: str) -> None:
        self.service = service
        self.keys = keys
        self.revoked = revoked
        self.urls: dict[bool, str] = {}
        self.apps: dict[bool, FastAPI] = {}


@pytest.fixture
async def stack(fresh_db: str) -> AsyncIterator[Stack]:
    settings = load_settings(database={"dsn": fresh_db, "storage_mode": "postgres"}, api={"enabled": False})
    service = IngestService(settings)
    await service.start()
    servers = []
    try:
        assert service.pool is not None
        store = KeyStore(service.pool)
        keys = {r.value: (await store.create(f"matrix {r.value}", r)).secret for r in Role}
        revoked = await store.create("matrix revoked admin", Role.admin)
        await store.revoke(revoked.key.id)
        st = Stack(service, keys, revoked.secret)
        for open_data in (False, True):
            app = create_app(service)
            app.state.access_policy = AccessPolicy(open_data=open_data)
            server, task, url = await serve(app)
            servers.append((server, task))
            st.apps[open_data], st.urls[open_data] = app, url
        yield st
    finally:
        for server, task in servers:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
        await service.stop()


# -- the matrix ----------------------------------------------------------------------------


def callers(st: Stack) -> dict[str, dict[str, str]]:
    viewer_id = st.keys["viewer"].split("_")[1]
    wrong_secret = f"upk_{viewer_id}_{new_token()[1].split('_', 2)[2]}"
    out = {
        "no key": {},
        "malformed key": {"Authorization": "Bearer not-a-key"},
        "other scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "unknown key": {"Authorization": f"Bearer {new_token()[1]}"},
        "wrong secret": {"Authorization": f"Bearer {wrong_secret}"},
        "revoked key": {"Authorization": f"Bearer {st.revoked}"},
    }
    for role, key in st.keys.items():
        out[role] = {"Authorization": f"Bearer {key}"}
    return out


def expected(rule: Access, caller: str, open_data: bool) -> tuple[int | None, str | None]:
    """(status, error code) of a denial, or (None, None) when the caller gets through."""
    if rule is Access.public:
        return None, None
    if caller == "no key":
        if rule is Access.open_data and open_data:
            return None, None
        return 401, "missing_key"
    if caller in ("malformed key", "other scheme"):
        return 401, "malformed_key"
    if caller in ("unknown key", "wrong secret"):
        return 401, "unknown_key"
    if caller == "revoked key":
        return 401, "revoked_key"
    return (None, None) if allows(Role(caller), rule) else (403, "insufficient_role")


def example_path(route: Any) -> str:
    path = route.path_format
    for param in route.dependant.path_params:
        examples = param.field_info.examples
        assert examples, (f"{route.path_format}: path parameter {param.name} needs an example "
                          f"(Path(..., examples=[...])): the docs show it and this test uses it")
        path = path.replace("{" + param.alias + "}", str(examples[0]))
    return path


def example_body(doc: dict[str, Any], route: Any, method: str) -> Any:
    op = doc["paths"].get(route.path_format, {}).get(method.lower(), {})
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return None
    refs = [s["$ref"] for s in schema.get("anyOf", [schema]) if "$ref" in s]
    if not refs:  # an inline schema (a route that reads its raw body, e.g. /ingest)
        return schema["examples"][0]
    model = doc["components"]["schemas"][refs[0].rsplit("/", 1)[1]]
    return model["examples"][0]


async def test_every_route_declares_exactly_one_access_rule_and_changes_need_a_key(stack: Stack):
    app = stack.apps[False]
    routes = api_routes(app.routes)
    assert len(routes) >= 16
    for route in routes:
        rules = route_rules(route)
        assert len(rules) == 1, (f"{sorted(route.methods)} {route.path_format} declares {rules or 'no'} access rule(s): "
                                 f"add exactly one of dependencies=[ALLOW_PUBLIC | ALLOW_OPEN_DATA | ALLOW_VIEWER | "
                                 f"ALLOW_OPERATOR | ALLOW_ADMIN | ALLOW_INGEST] (urbanpulse.api.access)")
        if set(route.methods) - {"GET", "HEAD"}:
            assert route_rule(route) in CHANGING_RULES, (
                f"{sorted(route.methods)} {route.path_format} changes state but is allowed for {route_rule(route)}")


async def test_authorization_matrix_every_route_role_and_bad_key(stack: Stack, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    who = callers(stack)
    checked = 0
    for open_data in (False, True):
        app = stack.apps[open_data]
        doc = app.openapi()
        async with httpx.AsyncClient(base_url=stack.urls[open_data], timeout=15) as client:
            for route in api_routes(app.routes):
                rule = route_rule(route)
                assert rule is not None, route.path_format
                for method in sorted(set(route.methods) - {"HEAD"}):
                    path, body = example_path(route), example_body(doc, route, method)
                    for caller, headers in who.items():
                        status, code = expected(rule, caller, open_data)
                        async with client.stream(method, path, headers=headers,
                                                 json=body if body is not None else None) as r:
                            where = f"{method} {path} as {caller!r} (open_data={open_data}, rule {rule.value})"
                            if status is None:
                                assert r.status_code not in (401, 403), (where, r.status_code, await r.aread())
                            else:
                                data = await r.aread()
                                assert r.status_code == status, (where, r.status_code, data)
                                err = r.json()
                                assert err["error"] == code and err["detail"], (where, err)
                                if status == 401:
                                    assert r.headers["www-authenticate"].startswith("Bearer"), where
                                for secret in [*stack.keys.values(), stack.revoked]:
                                    assert secret not in data.decode(), f"{where}: a key leaked into the answer"
                        checked += 1
    assert checked > 16 * len(who)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in [*stack.keys.values(), stack.revoked]:
        assert secret not in logged and secret.split("_", 2)[2] not in logged, "an API key was logged"


async def test_open_data_scope_reads_only_open_series_and_needs_the_switch(fresh_db: str):
    """A route for open data (what the registry's and history's read routes declare) sees the
    anonymous caller with the open-data scope only when api.open_data is on; keys see all."""
    probe = APIRouter()

    @probe.get("/probe/series")
    async def series(principal: Principal = ALLOW_OPEN_DATA) -> dict[str, Any]:
        rows = [("a", "open"), ("b", "restricted"), ("c", "personal"), ("d", None)]
        return {"ids": [s for s, cls in rows if principal.scope.allows(cls)], "anonymous": principal.anonymous}

    conn = await asyncpg.connect(fresh_db)
    try:
        from urbanpulse.storage.migrations import migrate

        await migrate(conn, "postgres")
        viewer = (await KeyStore(conn).create("v", "viewer")).secret
        for open_data in (False, True):
            app = build_app(AccessPolicy(open_data=open_data), keys=KeyStore(conn))
            app.include_router(probe)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                r = await c.get("/probe/series")
                if open_data:
                    assert r.status_code == 200 and r.json() == {"ids": ["a"], "anonymous": True}
                else:
                    assert r.status_code == 401 and "api.open_data" in r.json()["detail"]
                r = await c.get("/probe/series", headers={"Authorization": f"Bearer {viewer}"})
                assert r.json() == {"ids": ["a", "b", "c"], "anonymous": False}
                # a bad key is an error even where anonymous reading is allowed
                r = await c.get("/probe/series", headers={"Authorization": "Bearer upk_0000000000_" + "x" * 43})
                assert r.status_code == 401 and r.json()["error"] == "unknown_key"
            sec = app.openapi()["paths"]["/probe/series"]["get"]["security"]
            assert sec == ([{}, {"apiKey": []}] if open_data else [{"apiKey": []}])
    finally:
        await conn.close()


# -- keys ----------------------------------------------------------------------------------


async def test_keys_are_stored_hashed_and_revocation_is_immediate(fresh_db: str):
    from urbanpulse.storage.migrations import migrate

    conn = await asyncpg.connect(fresh_db)
    try:
        await migrate(conn, "postgres")
        store = KeyStore(conn)
        made = await store.create("grafana", "viewer", created_by="test")
        assert made.secret.startswith(f"upk_{made.key.id}_") and len(made.secret) == 4 + 10 + 1 + 43
        row = await conn.fetchrow("SELECT * FROM api_keys WHERE id = $1", made.key.id)
        stored = " ".join(str(v) for v in row.values())
        assert made.secret.split("_", 2)[2] not in stored and made.secret not in stored
        assert bytes(row["secret_sha256"]) == hashlib.sha256(made.secret.encode()).digest()
        assert (await store.verify(made.secret)).role is Role.viewer
        await store.revoke(made.key.id, "test")
        with pytest.raises(NotAuthenticated, match="revoked") as exc:
            await store.verify(made.secret)
        assert exc.value.code == "revoked_key" and made.secret not in str(exc.value)
        again = await store.revoke(made.key.id, "someone else")  # idempotent: first revocation kept
        assert again.revoked_by == "test"
        assert [k.id for k in await store.list(include_revoked=False)] == []
    finally:
        await conn.close()


def _cli(*args: str, dsn: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("URBANPULSE_")}
    env.update(URBANPULSE_DATABASE__DSN=dsn, URBANPULSE_DATABASE__STORAGE_MODE="postgres")
    return subprocess.run([sys.executable, "-m", "urbanpulse.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_cli_keys_create_list_revoke(fresh_db: str, tmp_path: Path):
    out = _cli("keys", "create", "--role", "operator", "--name", "ana (operations)", dsn=fresh_db, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    assert key.startswith("upk_") and len(out.stdout.splitlines()) == 1  # stdout is the key alone
    key_id = key.split("_")[1]
    assert "not shown again" in out.stderr and key not in out.stderr

    out = _cli("keys", "list", dsn=fresh_db, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith(key_id))
    assert "operator" in line and "active" in line and "ana (operations)" in line
    assert key.split("_", 2)[2] not in out.stdout

    out = _cli("keys", "revoke", key_id, dsn=fresh_db, cwd=tmp_path)
    assert out.returncode == 0 and f"revoked key {key_id}" in out.stdout, out.stderr
    out = _cli("keys", "list", dsn=fresh_db, cwd=tmp_path)
    assert "revoked" in next(ln for ln in out.stdout.splitlines() if ln.startswith(key_id))
    out = _cli("keys", "list", "--active", dsn=fresh_db, cwd=tmp_path)
    assert key_id not in out.stdout

    out = _cli("keys", "revoke", "0123456789", dsn=fresh_db, cwd=tmp_path)
    assert out.returncode == 2 and "no API key with id '0123456789'" in out.stderr and "Traceback" not in out.stderr
    out = _cli("keys", "create", "--role", "root", "--name", "x", dsn=fresh_db, cwd=tmp_path)
    assert out.returncode == 2 and "invalid choice" in out.stderr


async def test_admin_api_makes_lists_and_revokes_keys(stack: Stack):
    admin = {"Authorization": f"Bearer {stack.keys['admin']}"}
    async with httpx.AsyncClient(base_url=stack.urls[False], timeout=10) as c:
        r = await c.post("/keys", json={"name": "dashboard", "role": "viewer"}, headers=admin)
        assert r.status_code == 201, r.text
        made = r.json()
        new = {"Authorization": f"Bearer {made['key']}"}
        assert made["info"]["role"] == "viewer" and made["info"]["created_by"] == "matrix admin"
        assert (await c.get("/alerts", headers=new)).status_code == 200
        listed = (await c.get("/keys", headers=admin)).json()["items"]
        assert made["info"]["id"] in [k["id"] for k in listed]
        assert made["key"] not in str(listed) and stack.keys["admin"] not in str(listed)
        r = await c.delete(f"/keys/{made['info']['id']}", headers=admin)
        assert r.status_code == 200 and r.json()["active"] is False
        r = await c.get("/alerts", headers=new)
        assert r.status_code == 401 and r.json()["error"] == "revoked_key"
        own_id = stack.keys["admin"].split("_")[1]
        r = await c.delete(f"/keys/{own_id}", headers=admin)
        assert r.status_code == 409 and "making this request" in r.json()["detail"]
        r = await c.post("/keys", json={"name": "x", "role": "admin"},
                         headers={"Authorization": f"Bearer {stack.keys['operator']}"})
        assert r.status_code == 403 and "needs role admin" in r.json()["detail"]
        r = await c.post("/keys", json={"name": "x", "role": "root"}, headers=admin)
        assert r.status_code == 422 and "body field role" in r.json()["detail"]
