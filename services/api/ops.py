"""Routes beside the API proper, on the same port: `/healthz` (the process is alive),
`/readyz` (MongoDB and Kafka answer), `/metrics` (Prometheus text format), and the interactive
docs page `/docs` with its Swagger UI assets served by the app itself, so it works offline.

The assets are the Swagger UI 5 build shipped in the `fastapi-offline` package (only its
files are used): Swagger UI 4 (the `swagger-ui-bundle` package) cannot render an OpenAPI 3.1
document, which is what FastAPI generates.
"""

import asyncio
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from services.api.context import context_of
from services.common.worker import mongo_and_kafka_ready

ASSETS_PATH = "/docs/assets"
SWAGGER_DIR = Path(fastapi_offline.__file__).parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> JSONResponse:
    """200 while the process runs."""
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 when MongoDB answers `ping` and the broker is connected, else 503 naming which."""
    ctx = context_of(request)
    try:
        checks = await asyncio.wait_for(mongo_and_kafka_ready(ctx.client, ctx.broker)(), 5)
    except Exception as exc:  # a failing check means "not ready", never a crash
        return JSONResponse({"status": "unready", "error": str(exc)}, status_code=503)
    ok = all(checks.values())
    return JSONResponse({"status": "ready" if ok else "unready", "checks": checks},
                        status_code=200 if ok else 503)


@router.get("/metrics")
async def metrics() -> Response:
    """The process's Prometheus metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    """Swagger UI for `/openapi.json`, every asset from this app."""
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} - docs",
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
    )


def docs_assets() -> StaticFiles:
    """The Swagger UI files, to mount at `ASSETS_PATH`."""
    return StaticFiles(directory=SWAGGER_DIR)
