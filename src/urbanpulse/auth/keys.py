"""API keys: made, checked, listed and revoked; only their SHA-256 is stored.

A key looks like ``upk_3f9a1c07b2_<43 random characters>``. The part after ``upk_`` up to the
next underscore is its public id (shown by ``urbanpulse keys list``, used to revoke it); the
rest is 256 random bits. The database keeps ``sha256(key)``: a stolen table does not give a
working key, and because the secret is random and long a fast hash is enough (no password
stretching needed). Checks compare digests in constant time. The full key is returned once, by
:meth:`KeyStore.create`, and never logged; error messages name only the public id.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from urbanpulse.auth.roles import Role
from urbanpulse.errors import InvalidRequest, NotAuthenticated, NotFound
from urbanpulse.ttl_cache import TtlCache

PREFIX = "upk_"
_ID_BYTES = 5  # 10 hex characters
log = logging.getLogger(__name__)
_TOKEN = re.compile(r"^upk_([0-9a-f]{10})_([A-Za-z0-9_-]{43})$")
_DUMMY_DIGEST = hashlib.sha256(b"no such key").digest()


def digest(token: str) -> bytes:
    """What is stored for a key: sha256 of the whole key string."""
    return hashlib.sha256(token.encode()).digest()


def new_token() -> tuple[str, str]:
    """A fresh ``(key_id, key)``."""
    key_id = secrets.token_hex(_ID_BYTES)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(token: str) -> str | None:
    """The public id of a well-formed key, else None (the key itself is never echoed)."""
    m = _TOKEN.match(token)
    return m.group(1) if m else None


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    name: str
    role: Role
    created_at: datetime
    created_by: str | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role.value, "created_at": self.created_at.isoformat(),
                "created_by": self.created_by, "active": self.active,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None, "revoked_by": self.revoked_by}

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ApiKey:
        return cls(row["id"], row["name"], Role(row["role"]), row["created_at"], row["created_by"],
                   row["revoked_at"], row["revoked_by"])


@dataclass(frozen=True)
class CreatedKey:
    """A new key: ``secret`` is the whole key, to be shown once and then forgotten."""

    key: ApiKey
    secret: str


_COLUMNS = "id, name, role, created_at, created_by, revoked_at, revoked_by"


class KeyStore:
    """The ``api_keys`` table (migration 20) over an asyncpg pool or connection.

    ``cache_s`` > 0 keeps keys that verified as *active* for that many seconds (the service uses
    ``api.key_cache_s``, default 5), so a request checks its key without a database round trip.
    The cache is keyed by the key's SHA-256 (the key itself is not kept); malformed, unknown and
    revoked keys are looked up every time. The bound: a key revoked by another process (``urbanpulse
    keys revoke``, another instance) stops working here within ``cache_s``; one revoked through
    this store (``DELETE /keys/{id}``) at once. ``clock`` is for tests."""

    def __init__(self, db: asyncpg.Pool | asyncpg.Connection, cache_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.cache: TtlCache[bytes, ApiKey] | None = TtlCache(cache_s, 10_000, clock) if cache_s > 0 else None

    async def create(self, name: str, role: Role | str, created_by: str | None = None) -> CreatedKey:
        """A new key with ``role``; the returned ``secret`` is the only copy of the key."""
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidRequest("a key needs a name of 1..200 characters saying who or what holds it, "
                                 "e.g. 'grafana' or 'ana (operations)'")
        try:
            role = Role(role)
        except ValueError:
            raise InvalidRequest(f"role {role!r} is not valid; use one of {', '.join(r.value for r in Role)}") from None
        key_id, token = new_token()
        row = await self.db.fetchrow(
            f"INSERT INTO api_keys (id, name, role, secret_sha256, created_by) VALUES ($1, $2, $3, $4, $5) "
            f"RETURNING {_COLUMNS}", key_id, name, role.value, digest(token), created_by)
        key = ApiKey.from_row(row)
        log.info("API key %s made: role %s, name %r, by %s", key.id, key.role.value, key.name, created_by)
        return CreatedKey(key, token)

    async def list(self, include_revoked: bool = True) -> list[ApiKey]:
        """Every key, oldest first (never their secrets)."""
        where = "" if include_revoked else "WHERE revoked_at IS NULL"
        rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM api_keys {where} ORDER BY created_at, id")
        return [ApiKey.from_row(r) for r in rows]

    async def get(self, key_id: str) -> ApiKey:
        row = await self.db.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE id = $1", key_id)
        if row is None:
            raise NotFound(f"no API key with id {key_id!r}; list them with `urbanpulse keys list` or GET /keys")
        return ApiKey.from_row(row)

    async def revoke(self, key_id: str, revoked_by: str | None = None) -> ApiKey:
        """Revoke a key (it stops working at once). Revoking a revoked key changes nothing."""
        row = await self.db.fetchrow(
            f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()), "
            f"revoked_by = CASE WHEN revoked_at IS NULL THEN $2 ELSE revoked_by END "
            f"WHERE id = $1 RETURNING {_COLUMNS}", key_id, revoked_by)
        if row is None:
            raise NotFound(f"no API key with id {key_id!r}; list them with `urbanpulse keys list` or GET /keys")
        key = ApiKey.from_row(row)
        if self.cache is not None:
            self.cache.discard(lambda k: k.id == key.id)
        log.info("API key %s (%s, %r) revoked by %s", key.id, key.role.value, key.name, key.revoked_by)
        return key

    async def verify(self, token: str) -> ApiKey:
        """The active key ``token`` is, or :class:`NotAuthenticated` saying why (never echoing it)."""
        m = _TOKEN.match(token)
        if m is None:
            raise NotAuthenticated("the API key is malformed: send the whole key printed by `urbanpulse keys "
                                   "create` (upk_<id>_<secret>) as 'Authorization: Bearer <key>'", "malformed_key")
        wanted = digest(token)
        if self.cache is not None and (hit := self.cache.get(wanted)) is not None:
            return hit
        row = await self.db.fetchrow(f"SELECT {_COLUMNS}, secret_sha256 FROM api_keys WHERE id = $1", m.group(1))
        stored = bytes(row["secret_sha256"]) if row is not None else _DUMMY_DIGEST
        if not hmac.compare_digest(stored, wanted) or row is None:
            raise NotAuthenticated("the API key is not recognised; check it was copied whole, or ask an admin "
                                   "for a new one (`urbanpulse keys create`)", "unknown_key")
        key = ApiKey.from_row(row)
        if not key.active:
            raise NotAuthenticated(f"API key {key.id} was revoked at {key.revoked_at:%Y-%m-%d %H:%M:%S %Z}; "
                                   f"ask an admin for a new one", "revoked_key")
        if self.cache is not None and key.active:
            self.cache.put(wanted, key)
        return key
