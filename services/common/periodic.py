"""The one periodic loop every worker's background tasks use (outbox relay, billing cycle,
dunning): run a step, log and count a failure, wait for the interval or for stop.

A failing step never ends the loop: the next step is the retry (a transient MongoDB or broker
error clears by itself). Failures are counted in `billing_background_failures_total{task}`
(docs/operations.md#metrics). Stop is honoured within one step: the wait ends as soon as
`stop` is set.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from services.common.metrics import BACKGROUND_FAILURES

log = logging.getLogger(__name__)

#: One round of a periodic task. A truthy result means "more work is waiting": the next round
#: starts at once instead of after the interval (the outbox relay while it drains a backlog).
Step = Callable[[], Awaitable[object]]
#: A worker background task as `serve_worker` runs it: `task(stop)`.
Task = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds`; True as soon as `stop` is set (at once if it already is)."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def run_every(interval: float, step: Step, stop: asyncio.Event, name: str) -> None:
    """Run `step()` every `interval` seconds until `stop` is set; never when `interval <= 0`.

    An exception from `step` is logged with its traceback (`"<name> failed"`), counted in
    `billing_background_failures_total{task=name}`, and the loop goes on after the interval.
    A step in progress when `stop` is set is not interrupted; no new step starts after it.
    `asyncio.CancelledError` is not caught.
    """
    if interval <= 0:
        return
    while not stop.is_set():
        try:
            if await step():
                continue
        except Exception:
            BACKGROUND_FAILURES.labels(task=name).inc()
            log.exception("%s failed; trying again in %s s", name, interval)
        if await wait_or_stop(stop, interval):
            return


def periodic_task(interval: float, step: Step, name: str) -> Task:
    """`run_every(interval, step, stop, name)` as a background task for `serve_worker`."""

    async def run(stop: asyncio.Event) -> None:
        await run_every(interval, step, stop, name)

    return run
