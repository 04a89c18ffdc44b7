"""``/docs`` (Swagger UI) and ``/openapi.json`` served entirely by the service, so the
interactive documentation works on a network without internet access.

The Swagger UI files come from the PyPI package ``fastapi-offline`` (which ships Swagger UI's
dist files, Apache-2.0, under ``fastapi_offline/static``); only the files the page uses are
served, from ``/docs/assets/<name>``. FastAPI's own ``/docs`` would load them from a CDN.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Path as PathParam, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from urbanpulse.api.access import ALLOW_PUBLIC
from urbanpulse.errors import NotFound

def _asset_dir() -> Path:
    """fastapi_offline's static files, found without importing the package (its import pulls in
    pydantic.v1, about 0.1-0.2 s of every service start)."""
    spec = find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the package fastapi-offline is required for /docs (pip install fastapi-offline)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


ASSET_DIR = _asset_dir()
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}

router = APIRouter(include_in_schema=False, dependencies=[ALLOW_PUBLIC])


@router.get("/openapi.json")
async def openapi_document(request: Request) -> JSONResponse:
    """The OpenAPI 3.1 document of this service (see :mod:`urbanpulse.api.openapi`)."""
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI with every asset from this service (no CDN)."""
    app: FastAPI = request.app
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json", title=f"{app.title} API",
        swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
        swagger_favicon_url=f"{root}/docs/assets/favicon.png",
        swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None})


@router.get("/docs/assets/{name}")
async def swagger_asset(name: str = PathParam(examples=["swagger-ui.css"])) -> Any:
    """One of the few Swagger UI files the page needs (nothing else from the directory)."""
    if name not in ASSETS:
        raise NotFound(f"no documentation asset {name!r}")
    return FileResponse(ASSET_DIR / name, media_type=ASSETS[name],
                        headers={"Cache-Control": "public, max-age=86400"})
