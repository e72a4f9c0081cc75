"""`billing run api`: the API served by uvicorn on `BILLING_API_HOST`:`BILLING_API_PORT`
until SIGTERM (docs/api.md, "Running it").

The process runtime (`services.common.runtime`) owns the signals; on stop, uvicorn stops
accepting connections, lets in-flight requests finish, then the app's lifespan closes the
broker and the MongoDB client.
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import uvicorn

from services.api.app import create_app
from services.api.settings import ApiSettings

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn leaving signal handling to the runtime."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_api(settings: ApiSettings, stop: asyncio.Event) -> None:
    """Serve the API until `stop` is set (then finish in-flight requests and close).
    Raises `SystemExit` when the server cannot start (port taken, MongoDB or Kafka not
    answering at start-up)."""
    config = uvicorn.Config(
        create_app(settings), host=settings.api_host, port=settings.api_port,
        lifespan="on", log_level="warning", access_log=False,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_timeout_seconds)),
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise SystemExit("the API server stopped during start-up (see the log)")
        await asyncio.sleep(0.05)
    log.info("billing api listening on http://%s:%s", settings.api_host, settings.api_port)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.cancel()
    await task

