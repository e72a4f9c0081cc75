"""Waiting for something positive, with a deadline: the one way tests synchronise.

    value = await eventually(lambda: store.invoice(inv_id), what="the invoice", seconds=60)
    value = wait_until(lambda: path.exists() and path.read_text(), what="the log line")

`check` may be a plain function or return an awaitable; the first truthy result is returned.
On the deadline the test fails with `what` and the last result seen, never silently. The
interval between checks only paces the polling: nothing is concluded from time passing.
"""

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

DEFAULT_SECONDS = 90.0
INTERVAL_SECONDS = 0.2


async def eventually(
    check: Callable[[], Any], *, what: str, seconds: float = DEFAULT_SECONDS,
    interval: float = INTERVAL_SECONDS,
) -> Any:
    """Call `check` until it returns something truthy (awaiting it when it is awaitable) and
    return that; `AssertionError` naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while True:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {seconds} s (last: {last!r})")
        await asyncio.sleep(interval)


def wait_until(
    check: Callable[[], Any], *, what: str, seconds: float = DEFAULT_SECONDS,
    interval: float = INTERVAL_SECONDS,
) -> Any:
    """Blocking twin of `eventually` for synchronous tests (subprocesses, files, HTTP)."""
    deadline = time.monotonic() + seconds
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {seconds} s (last: {last!r})")
        time.sleep(interval)
