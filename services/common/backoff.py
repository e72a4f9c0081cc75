"""Capped exponential back-off with jitter, and a retry loop that stops on request.

    Backoff(base, cap).next_delay()   base * 2**n, at most cap, "equal jitter" (half fixed,
                                      half random), so a retry storm spreads out
    retry_forever(step, stop=..., service=..., what=...)
                                      await `step()` until it returns, sleeping between
                                      `RetryableError`s; returns `Stopped` when `stop` is set

Every retry counts in `billing_retries_total{service, reason}` (reason: the error's class
name) and logs once per back-off step. The policy it serves: docs/design.md#reliability.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from services.common.errors import RetryableError
from services.common.metrics import RETRIES

log = logging.getLogger(__name__)
T = TypeVar("T")


class Stopped(Exception):  # noqa: N818 - a signal, not an error
    """`stop` was set while retrying: the work was not done (do not commit its offset)."""


@dataclass
class Backoff:
    """Delays for consecutive retries, in seconds: `base * 2**n` capped at `cap`, with jitter.

    `next_delay()` returns the delay before the next try and advances; `reset()` starts over
    after a success. With jitter the delay lies in [d/2, d] where d is the capped value.
    """

    base: float = 0.2
    cap: float = 30.0
    jitter: bool = True
    attempts: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        """The delay (seconds) before the next try; advances the exponent."""
        raw = float(min(self.cap, self.base * 2.0 ** min(self.attempts, 62)))
        self.attempts += 1
        if not self.jitter:
            return raw
        return raw / 2 + self.rng.uniform(0, raw / 2)

    def reset(self) -> None:
        """Start again from `base` (after a success)."""
        self.attempts = 0


async def wait_or_stop(stop: asyncio.Event | None, delay: float) -> bool:
    """Sleep `delay` seconds without blocking the event loop; True at once if `stop` is set."""
    if stop is None:
        await asyncio.sleep(delay)
        return False
    if stop.is_set():
        return True
    try:
        await asyncio.wait_for(stop.wait(), timeout=delay)
    except TimeoutError:
        return False
    return True


async def retry_forever(
    step: Callable[[], Awaitable[T]],
    *,
    stop: asyncio.Event | None,
    service: str,
    what: str,
    base: float = 0.2,
    cap: float = 30.0,
    retry_on: tuple[type[BaseException], ...] = (RetryableError,),
) -> T:
    """Await `step()` until it returns its value, retrying on `retry_on` (default
    `RetryableError`) with `Backoff(base, cap)` for as long as it lasts.

    Each retry increments `billing_retries_total{service, reason=<exception class>}` and logs
    one warning naming `what`. Other exceptions propagate at once. Raises `Stopped` (from the
    last retryable error) when `stop` is set before a retry: the caller must not treat the
    work as done.
    """
    backoff = Backoff(base, cap)
    while True:
        try:
            return await step()
        except retry_on as exc:
            reason = type(exc).__name__
            RETRIES.labels(service=service, reason=reason).inc()
            delay = backoff.next_delay()
            log.warning(
                "%s: %s (try %d), again in %.2f s: %s",
                what, reason, backoff.attempts, delay, exc, extra={"service": service},
            )
            if await wait_or_stop(stop, delay):
                raise Stopped(f"{what}: stopped while retrying") from exc
