"""Process runtime for workers: signal handling and graceful shutdown.

SIGTERM or SIGINT sets the stop event; the worker finishes or hands back in-flight work,
commits and leaves its consumer group (docs/design.md#reliability).
"""

import asyncio
import signal
from collections.abc import Awaitable, Callable

Worker = Callable[[asyncio.Event], Awaitable[None]]


async def _run(worker: Worker) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await worker(stop)


def run_worker(worker: Worker) -> None:
    """Run `worker(stop)` until it returns; signals set `stop`."""
    asyncio.run(_run(worker))
