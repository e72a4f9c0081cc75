"""The operations endpoint every worker serves: `/metrics` (Prometheus text format),
`/healthz` (the process is alive) and `/readyz` (connected to Kafka and MongoDB)."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger(__name__)
ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]


def ops_app(ready: ReadyCheck, extra_routes: list[Route] | None = None) -> Starlette:
    """A Starlette app with the three ops routes (plus `extra_routes`).

    `ready()` returns a map dependency -> reachable; `/readyz` answers 200 only when all are.
    """

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            checks = await asyncio.wait_for(ready(), timeout=5)
        except Exception as exc:  # a failing check means "not ready", never a crash
            return JSONResponse({"status": "unready", "error": str(exc)}, status_code=503)
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "unready", "checks": checks},
            status_code=200 if ok else 503,
        )

    routes = [
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *(extra_routes or []),
    ]
    return Starlette(routes=routes)


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the worker (`services.common.runtime`)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class OpsServer:
    """Runs an ASGI app with uvicorn inside the worker's event loop."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Start serving; returns the bound port (useful when configured as 0)."""
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        sock = self._server.servers[0].sockets[0]
        port: int = sock.getsockname()[1]
        log.info("ops endpoint listening on port %s", port)
        return port

    async def stop(self) -> None:
        """Stop serving and wait for the server task."""
        self._server.should_exit = True
        if self._task is not None:
            await self._task
