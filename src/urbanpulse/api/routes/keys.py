"""``/keys``: API keys over HTTP, for admins (the same as ``urbanpulse keys create|list|revoke``).

The new key is in the answer to ``POST /keys`` and nowhere else: only its SHA-256 is stored.
A key cannot revoke itself (409), so an admin cannot lock themselves out by accident.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request

from urbanpulse.api.access import ALLOW_ADMIN, Principal, key_store
from urbanpulse.api.schemas import CreatedKeyOut, KeyIn, KeyInfo, KeyList
from urbanpulse.errors import Conflict

router = APIRouter(tags=["access"])

_KEY_ID = Path(pattern=r"^[0-9a-f]{10}$", description="the key's public id (GET /keys)", examples=["3f9a1c07b2"])


@router.get("/keys", summary="List API keys (never their secrets)", response_model=KeyList,
            dependencies=[ALLOW_ADMIN])
async def list_keys(request: Request) -> dict[str, Any]:
    return {"items": [k.to_api() for k in await key_store(request).list()]}


@router.post("/keys", status_code=201, summary="Make an API key (shown once)", response_model=CreatedKeyOut)
async def create_key(request: Request, body: KeyIn, principal: Principal = ALLOW_ADMIN) -> dict[str, Any]:
    created = await key_store(request).create(body.name, body.role, created_by=principal.name)
    return {"key": created.secret, "info": created.key.to_api()}


@router.delete("/keys/{key_id}", summary="Revoke an API key (it stops working at once)", response_model=KeyInfo,
               responses={409: {"description": "A key cannot revoke itself"}})
async def revoke_key(request: Request, key_id: str = _KEY_ID, principal: Principal = ALLOW_ADMIN) -> dict[str, Any]:
    if principal.key is not None and principal.key.id == key_id:
        raise Conflict(f"API key {key_id} is the one making this request; revoke it with another admin key "
                       f"or `urbanpulse keys revoke {key_id}`")
    return (await key_store(request).revoke(key_id, revoked_by=principal.name)).to_api()
