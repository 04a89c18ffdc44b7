"""/docs works without internet, and the OpenAPI document is complete enough to use it: every
operation has an example answer, every body a schema and an example, every error the one
ErrorBody schema."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from urbanpulse.api.app import build_app


@pytest.fixture
async def client() -> httpx.AsyncClient:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app()), base_url="http://svc") as c:
        yield c


async def test_docs_page_and_every_asset_it_references_come_from_the_service(client: httpx.AsyncClient):
    r = await client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page) + re.findall(r"""url: ?["']([^"']+)["']""", page)
    assert refs, page
    assert not re.search(r"https?://", page), "the page must not load anything from another host"
    fetched = {}
    for ref in refs:
        assert ref.startswith("/"), ref
        resp = await client.get(ref)
        assert resp.status_code == 200 and len(resp.content) > 100, (ref, resp.status_code)
        fetched[ref] = resp
    js = next(v for k, v in fetched.items() if k.endswith(".js"))
    assert js.headers["content-type"].startswith("text/javascript") and b"SwaggerUIBundle" in js.content
    # Swagger UI 5 renders OpenAPI 3.1 (which FastAPI emits); 4.x shows a blank error page for it
    assert re.search(rb'"5\.\d+\.\d+"', js.content)
    assert fetched["/openapi.json"].json()["openapi"].startswith("3.1")
    css = next(v for k, v in fetched.items() if k.endswith(".css"))
    assert css.headers["content-type"].startswith("text/css")
    assert (await client.get("/docs/assets/redoc.standalone.js")).status_code == 404  # only what the page needs
    assert (await client.get("/docs/assets/..%2Fcore.py")).status_code == 404


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    for option in schema.get("anyOf", [schema]):
        if "$ref" in option:
            return doc["components"]["schemas"][option["$ref"].rsplit("/", 1)[1]]
    return schema


async def test_every_operation_has_an_example_and_every_body_a_schema(client: httpx.AsyncClient):
    doc = (await client.get("/openapi.json")).json()
    ops = [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]
    assert len(ops) >= 12
    for path, method, op in ops:
        where = f"{method.upper()} {path}"
        ok = next(code for code in op["responses"] if code.startswith("2"))
        content = op["responses"][ok].get("content")
        for media, body in (content or {}).items():  # 204 has no body; an export has one per file format
            named = body.get("examples") or {}  # several named examples (e.g. both shapes of /readings)
            assert ("example" in body or "examples" in _resolve(doc, body.get("schema", {}))
                    or (named and all("value" in e for e in named.values()))), f"{where} ({media}): no example"
        if method in ("post", "put", "patch"):
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            assert "examples" in _resolve(doc, schema), f"{where}: request body without schema example"
            assert "413" in op["responses"], where
        for param in op.get("parameters", []):
            if param["in"] == "path":
                assert param["schema"].get("examples"), f"{where}: path parameter {param['name']} without example"
        for code, resp in op["responses"].items():
            if code[0] in "45" and path != "/health":
                assert resp["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, \
                    (where, code)
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=1.0.0; charset=utf-8"] or list(metrics)[0].startswith("text/plain")


async def test_allow_lists_every_method_of_a_path(client: httpx.AsyncClient):
    head_ok = (await client.head("/health")).status_code == 200
    expect = "GET, HEAD, OPTIONS, POST" if head_ok else "GET, OPTIONS, POST"
    r = await client.options("/maintenance")
    assert r.status_code == 204 and r.headers["allow"] == expect
    r = await client.put("/maintenance")
    assert r.status_code == 405 and r.headers["allow"] == expect
    assert r.json()["error"] == "method_not_allowed"
    r = await client.options("/alerts/7/ack")
    assert r.status_code == 204 and r.headers["allow"] == "OPTIONS, POST"
    r = await client.get("/no/such/thing")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
