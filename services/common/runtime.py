"""Process runtime for workers: signal handling and graceful shutdown.

SIGTERM or SIGINT sets the stop event; the worker finishes or hands back in-flight work,
commits and leaves its consumer group (docs/design.md#reliability). If the worker has not
returned `hard_stop_seconds` after the first signal (a dependency that never answers, a
library call that ignores cancellation), the process exits with status 70 rather than
ignoring the request: an orchestrator would SIGKILL it at the end of its grace period anyway,
and every effect is idempotent (work not committed is redelivered). A second signal exits at
once.
"""

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable

Worker = Callable[[asyncio.Event], Awaitable[None]]
log = logging.getLogger(__name__)
#: Exit status of a worker that did not stop within its deadline (EX_SOFTWARE).
HARD_STOP_STATUS = 70


def _hard_exit(reason: str) -> None:
    log.error("worker did not stop in time (%s): exiting with status %d", reason,
              HARD_STOP_STATUS)
    logging.shutdown()
    os._exit(HARD_STOP_STATUS)


async def _run(worker: Worker, hard_stop_seconds: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            _hard_exit("second stop signal")
        stop.set()
        timer = threading.Timer(hard_stop_seconds, _hard_exit,
                                args=(f"{hard_stop_seconds:.0f} s after the stop signal",))
        timer.daemon = True
        timer.start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await worker(stop)


def run_worker(worker: Worker, hard_stop_seconds: float = 40.0) -> None:
    """Run `worker(stop)` until it returns; SIGTERM/SIGINT set `stop`, and the process exits
    with `HARD_STOP_STATUS` if it is still running `hard_stop_seconds` later (or on a second
    signal)."""
    asyncio.run(_run(worker, hard_stop_seconds))
