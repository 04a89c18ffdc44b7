"""Who may call which route: one declarative rule per route, checked by a FastAPI dependency.

Every route declares exactly one rule with ``dependencies=[ALLOW_<RULE>]`` (or takes the
:class:`Principal` as a parameter: ``principal: Principal = ALLOW_VIEWER``)::

    from urbanpulse.api.access import ALLOW_OPEN_DATA, ALLOW_OPERATOR, Principal

    @router.get("/sensors", dependencies=[ALLOW_OPEN_DATA])          # rows filtered by scope
    async def list_sensors(principal: Principal = ALLOW_OPEN_DATA): ...
        ... WHERE data_class = ANY($1)  with principal.scope.data_classes_list

    @router.post("/sensors", dependencies=[ALLOW_ADMIN])
    async def add_sensor(...): ...

The rule is read back from the route table by :func:`route_rule` (the authorization matrix
test walks ``app.routes`` with it, so a route without a rule fails the suite) and by the
OpenAPI document (security and 401/403 responses). Keys are sent as
``Authorization: Bearer upk_<id>_<secret>`` (ingest routes also take the key as the password
of ``Authorization: Basic``, for devices that cannot send anything else); they are never logged, and denials name only the
key's public id. Every denial is a 401 (no, malformed, unknown or revoked key) or a 403 (a
valid key without the role) with ``{"detail": "...", "error": "<code>"}``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import fastapi.routing
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from urbanpulse.auth.keys import ApiKey, KeyStore
from urbanpulse.auth.roles import DATA_CLASSES, Access, Role, allows, least_roles
from urbanpulse.errors import Forbidden, NotAuthenticated, StorageUnavailable

SECURITY_SCHEME = "apiKey"

_bearer = HTTPBearer(auto_error=False, scheme_name=SECURITY_SCHEME,
                     description="An API key made with `urbanpulse keys create --role ROLE --name WHO` "
                                 "(or POST /keys by an admin), sent as `Authorization: Bearer upk_...`.")


@dataclass(frozen=True)
class AccessScope:
    """Which series a caller may read, by the data class the registry gives each sensor.

    A key of any reading role sees every class; the anonymous open-data scope sees only
    ``open`` ones. A series whose class is unknown (a sensor not in the registry) is not
    ``open``: the open-data scope never returns it. Filter rows with :meth:`allows`, or in SQL
    with ``data_class = ANY($n)`` and :attr:`data_classes_list`.
    """

    data_classes: frozenset[str]

    def allows(self, data_class: str | None) -> bool:
        return data_class is not None and data_class in self.data_classes

    @property
    def data_classes_list(self) -> list[str]:
        return sorted(self.data_classes)

    @property
    def open_data_only(self) -> bool:
        return self.data_classes == OPEN_DATA.data_classes


FULL = AccessScope(frozenset(DATA_CLASSES))
OPEN_DATA = AccessScope(frozenset({"open"}))
NOTHING = AccessScope(frozenset())


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key (its id, name, role), or anonymous; and what data it may read."""

    key: ApiKey | None
    scope: AccessScope

    @property
    def role(self) -> Role | None:
        return self.key.role if self.key else None

    @property
    def name(self) -> str:
        """For audit fields (``acknowledged_by`` ...): the key's name, or ``anonymous``."""
        return self.key.name if self.key else "anonymous"

    @property
    def anonymous(self) -> bool:
        return self.key is None


ANONYMOUS = Principal(None, NOTHING)


@dataclass(frozen=True)
class AccessPolicy:
    """Service-wide switches of access control (from the ``api:`` config section)."""

    open_data: bool = False  # anonymous callers may read open series on open_data routes


def policy(request: Request) -> AccessPolicy:
    return getattr(request.app.state, "access_policy", None) or AccessPolicy()


def key_store(request: Request) -> KeyStore:
    """``app.state.keys``, else a store over the service's pool (503 while it has none), caching
    verified keys for ``api.key_cache_s`` seconds."""
    store = getattr(request.app.state, "keys", None)
    if store is not None:
        return store
    service = getattr(request.app.state, "service", None)
    pool = getattr(service, "pool", None)
    if pool is None:
        raise StorageUnavailable("the database is not connected yet, so API keys cannot be checked; retry shortly")
    api = getattr(getattr(service, "settings", None), "api", None)
    store = KeyStore(pool, cache_s=float(getattr(api, "key_cache_s", 0.0)))
    request.app.state.keys = store
    return store


class RouteRule:
    """The dependency a route declares: checks the caller against ``rule``, returns a Principal."""

    def __init__(self, rule: Access) -> None:
        self.rule = rule

    def __repr__(self) -> str:
        return f"RouteRule({self.rule.value})"

    async def __call__(self, request: Request,
                       credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
        principal = await self._check(request, credentials)
        request.state.principal = principal
        return principal

    async def _check(self, request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
        header = request.headers.get("authorization")
        if header is None:
            if self.rule is Access.open_data and policy(request).open_data:
                return Principal(None, OPEN_DATA)
            raise NotAuthenticated(f"this endpoint needs an API key with role {_roles(self.rule)}: send "
                                   f"'Authorization: Bearer <key>' (an admin makes keys with `urbanpulse keys "
                                   f"create`){_open_data_hint(self.rule, request)}", "missing_key")
        token = credentials.credentials if credentials is not None else None
        if token is None and self.rule is Access.ingest:
            token = basic_password(header)  # devices that can only send Basic (Sensor.Community firmware)
        if token is None:
            raise NotAuthenticated("the Authorization header must be 'Bearer <key>' with a key made by "
                                   "`urbanpulse keys create`", "malformed_key")
        key = await key_store(request).verify(token)
        if not allows(key.role, self.rule):
            raise Forbidden(f"API key {key.id} has role {key.role.value}; this endpoint needs role "
                            f"{_roles(self.rule)}", "insufficient_role")
        return Principal(key, FULL)


class PublicRule(RouteRule):
    """The rule of routes anyone may call (health, metrics, docs): no key is read or checked."""

    def __init__(self) -> None:
        super().__init__(Access.public)

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        request.state.principal = ANONYMOUS
        return ANONYMOUS


def basic_password(header: str) -> str | None:
    """The password of an ``Authorization: Basic`` header, or None. Ingest routes take the API key
    as the password (any user name): station firmware and some network servers can send Basic
    credentials but no Bearer header."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep and password else None


def _roles(rule: Access) -> str:
    return " or ".join(r.value for r in least_roles(rule))


def _open_data_hint(rule: Access, request: Request) -> str:
    if rule is Access.open_data and not policy(request).open_data:
        return " (anonymous reading of open data is off on this service: api.open_data)"
    return ""


#: the one instance per rule; declare with ``dependencies=[ALLOW_X]`` or ``p: Principal = ALLOW_X``
RULES: dict[Access, RouteRule] = {a: (PublicRule() if a is Access.public else RouteRule(a)) for a in Access}
ALLOW_PUBLIC = Depends(RULES[Access.public])
ALLOW_OPEN_DATA = Depends(RULES[Access.open_data])
ALLOW_VIEWER = Depends(RULES[Access.viewer])
ALLOW_OPERATOR = Depends(RULES[Access.operator])
ALLOW_ADMIN = Depends(RULES[Access.admin])
ALLOW_INGEST = Depends(RULES[Access.ingest])


def api_routes(routes: Iterable[Any]) -> list[Any]:
    """Every API route of an app (``app.routes``), through included routers: recent FastAPI
    keeps those nested and exposes each route as a context with the effective path,
    dependencies (router-level ones included) and body; older versions list APIRoutes."""
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_contexts is None:
        return [r for r in routes if isinstance(r, APIRoute)]
    return [c for c in iter_contexts(list(routes)) if isinstance(c.original_route, APIRoute)]


def route_rules(route: Any) -> set[Access]:
    """Every rule a route (from :func:`api_routes`) declares among its dependencies; a sound
    route has exactly one."""
    found: set[Access] = set()

    def walk(dep: Any) -> None:
        if isinstance(dep.call, RouteRule):
            found.add(dep.call.rule)
        for sub in dep.dependencies:
            walk(sub)

    walk(route.dependant)
    return found


def route_rule(route: Any) -> Access | None:
    """The rule of a route, or None when it declares none (or, wrongly, several)."""
    rules = route_rules(route)
    return next(iter(rules)) if len(rules) == 1 else None
