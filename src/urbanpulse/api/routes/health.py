"""``GET /health``: is the database reachable, which storage mode, are the brokers connected."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Service health: database, brokers, storage mode",
            responses={200: {"content": {"application/json": {"schema": {"type": "object"}, "example": {
                "status": "ok", "storage_mode": "postgres", "database": {"mode": "postgres", "ok": True},
                "brokers": {"mqtt": {"connected": True}}, "counts": {"stored": 1200}}}}},
                       503: {"description": "Degraded: the same body, saying what is wrong",
                             "content": {"application/json": {"schema": {"type": "object"}}}}})
async def health(request: Request) -> JSONResponse:
    """200 when the database and every broker are fine, 503 with details otherwise."""
    body = await request.app.state.service.health()
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)
