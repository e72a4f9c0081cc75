"""Per-key rate limits (docs/api.md, "Limits") with the `limits` library: a moving window in
this process's memory. Each instance counts on its own, so N instances together allow N times
the configured rate to one key.
"""

import math
import time

from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from services.api.principal import Principal
from services.api.problems import Problem


class RateLimits:
    """`api_rate_limit` for every request of a key, `api_ingest_rate_limit` (a separate budget)
    for its `POST /v1/usage` requests; both in the `limits` notation (`600/minute`)."""

    def __init__(self, default: str, ingest: str) -> None:
        self._default = parse(default)
        self._ingest = parse(ingest)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def hit(self, principal: Principal, *, ingest: bool = False) -> None:
        """Count one request of `principal`; raises `Problem(429)` with `Retry-After` (whole
        seconds until the window lets the next request through, at least 1) when over."""
        item, scope = (self._ingest, "ingest") if ingest else (self._default, "api")
        if await self._limiter.hit(item, scope, principal.key_id):
            return
        stats = await self._limiter.get_window_stats(item, scope, principal.key_id)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        raise Problem(429, "Too Many Requests",
                      f"rate limit {item} of this key exceeded; retry in {wait} s",
                      headers={"Retry-After": str(wait)})
