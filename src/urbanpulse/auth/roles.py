"""Roles of API keys and the access rule every route declares.

A key has one role. Roles nest for people (``admin`` ⊇ ``operator`` ⊇ ``viewer``); ``ingest``
is for devices and gateways and grants nothing else (an admin key may ingest too, for tests and
back-fills). A route declares one :class:`Access` rule; ``public`` needs no key, ``open_data``
needs none when the anonymous open-data scope is switched on (``api.open_data``) and is then
limited to series whose data class is ``open``.
"""

from __future__ import annotations

from enum import Enum


class Role(str, Enum):
    """What an API key may do."""

    viewer = "viewer"      # read alerts, maintenance windows, readings, the registry
    operator = "operator"  # viewer + acknowledge/resolve alerts, maintenance windows
    admin = "admin"        # operator + the sensor registry and API keys
    ingest = "ingest"      # send readings over HTTP (nothing else)


class Access(str, Enum):
    """The rule a route declares: the least role a key needs (or ``public`` / ``open_data``)."""

    public = "public"        # no key (health, metrics, docs)
    open_data = "open_data"  # reads: a viewer key, or anonymous when api.open_data is on (open series only)
    viewer = "viewer"
    operator = "operator"
    admin = "admin"
    ingest = "ingest"


#: which rules a key of each role satisfies
GRANTS: dict[Role, frozenset[Access]] = {
    Role.viewer: frozenset({Access.public, Access.open_data, Access.viewer}),
    Role.operator: frozenset({Access.public, Access.open_data, Access.viewer, Access.operator}),
    Role.admin: frozenset(Access),
    Role.ingest: frozenset({Access.public, Access.ingest}),
}

#: data classes of a series (set per sensor in the registry)
DATA_CLASSES: tuple[str, ...] = ("open", "restricted", "personal")


def allows(role: Role, rule: Access) -> bool:
    """Whether a key with ``role`` may call a route declaring ``rule``."""
    return rule in GRANTS[role]


def least_roles(rule: Access) -> list[Role]:
    """The roles that satisfy ``rule`` (for messages: "needs a key with role operator or admin")."""
    return [r for r in Role if allows(r, rule)]
