"""The OpenAPI document, completed from the route table so it tells the truth about errors
and access without every route repeating it.

For every operation: the access rule's security requirement (``apiKey``; optional for
``open_data`` routes when anonymous open data is on) and its 401/403 answers; a 422 for routes
with parameters or a body, 404 for routes with a path id, 413 for routes with a body, 503 for
routes that need the database to check a key; every error answer with the one
:class:`~urbanpulse.api.errors.ErrorBody` schema. Routes add their own 409 etc. with
``responses=`` (a bare ``{409: {"description": ...}}`` gets the ErrorBody schema; one with its
own ``content`` keeps it, as /health's 503 does).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from urbanpulse.api.access import SECURITY_SCHEME, AccessPolicy, api_routes, route_rule
from urbanpulse.api.errors import ErrorBody
from urbanpulse.auth.roles import Access

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_DESCRIPTIONS = {
    "400": "The body could not be read (not UTF-8 JSON)",
    "401": "No API key, or a malformed, unknown or revoked one",
    "403": "The API key's role does not allow this",
    "404": "No such resource",
    "409": "Not allowed in the resource's current state",
    "413": "The request body is larger than api.max_body_bytes",
    "422": "A parameter or the body is not valid; `detail` says which and `errors` lists each",
    "503": "The database is unavailable or the feature is switched off; `detail` says which",
}
_EXAMPLES = {
    "400": {"detail": "the request body is not UTF-8 JSON; send a JSON object as shown in /docs", "error": "bad_request"},
    "401": {"detail": "this endpoint needs an API key with role operator or admin: send 'Authorization: Bearer <key>'",
            "error": "missing_key"},
    "403": {"detail": "API key 3f9a1c07b2 has role viewer; this endpoint needs role operator or admin",
            "error": "insufficient_role"},
    "404": {"detail": "no alert with id 42; list alerts with GET /alerts", "error": "not_found"},
    "409": {"detail": "alert 42 is already resolved", "error": "conflict"},
    "413": {"detail": "the request body is larger than 1048576 bytes (api.max_body_bytes); send less per request",
            "error": "payload_too_large"},
    "422": {"detail": "query parameter limit: Input should be less than or equal to 1000", "error": "invalid_request",
            "errors": [{"loc": ["query", "limit"], "msg": "Input should be less than or equal to 1000",
                        "type": "less_than_equal"}]},
    "503": {"detail": "the database is unavailable (ConnectionRefusedError); retry shortly",
            "error": "storage_unavailable"},
}


def _error(code: str) -> dict[str, Any]:
    return {"description": _DESCRIPTIONS.get(code, "Error"),
            "content": {"application/json": {"schema": _ERROR_REF, "example": _EXAMPLES.get(code)}}}


def build_openapi(app: FastAPI, policy: AccessPolicy) -> dict[str, Any]:
    """The completed document (see module doc); cached on ``app.openapi_schema``."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                      tags=app.openapi_tags)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs", {}))
    schemas["ErrorBody"].pop("$defs", None)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for route in api_routes(app.routes):
        if not route.include_in_schema:
            continue
        rule = route_rule(route)
        for method in route.methods - {"HEAD"}:
            op = doc["paths"].get(route.path_format, {}).get(method.lower())
            if op is not None:
                for name, schema in op.pop("x-schemas", {}).items():  # schemas a route's openapi_extra refers to
                    schemas.setdefault(name, schema)
                _complete(op, route, rule, policy)
    app.openapi_schema = doc
    return doc


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without the ``null`` that ``X | None = Query(None)`` adds: a query
    parameter or header is absent or a string, never JSON null."""
    options = schema.get("anyOf")
    if not options:
        return schema
    rest = [o for o in options if o.get("type") != "null"]
    if len(rest) != 1 or len(rest) == len(options):
        return schema
    out = {k: v for k, v in schema.items() if k != "anyOf"}
    out.update(rest[0])
    return out


def _complete(op: dict[str, Any], route: Any, rule: Access | None, policy: AccessPolicy) -> None:
    for param in op.get("parameters", []):
        param["schema"] = _not_null(param.get("schema", {}))
    responses = op.setdefault("responses", {})
    codes: set[str] = set()
    if rule is Access.public:
        op.pop("security", None)
    else:  # also a route without a rule: it is denied (and fails the authorization matrix test)
        codes |= {"401", "403", "503"}
        op["security"] = [{SECURITY_SCHEME: []}]
        if rule is Access.open_data and policy.open_data:
            op["security"] = [{}, {SECURITY_SCHEME: []}]
    has_params = bool(route.dependant.query_params or route.dependant.path_params or route.dependant.header_params)
    if has_params or route.body_field is not None:
        codes.add("422")
    if route.dependant.path_params:
        codes.add("404")
    if route.body_field is not None:
        codes |= {"400", "413"}
    for code in codes | {c for c in responses if c[0] in "45"}:
        declared = responses.get(code)
        if declared is None or "content" not in declared or code == "422":
            responses[code] = _error(code)  # FastAPI's own 422 schema is not what this API answers
    op["responses"] = dict(sorted(responses.items()))
