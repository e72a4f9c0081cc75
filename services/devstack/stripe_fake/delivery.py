"""Webhook delivery signed exactly as Stripe signs, with switches for tests.

Signature (Stripe's scheme): header `Stripe-Signature: t=<unix seconds>,v1=<hex>` where the hex
is HMAC-SHA256 with the endpoint secret over `"{t}.{payload}"`. An attempt that does not get a
2xx answer is retried after `retry_delays` (Stripe retries for up to 3 days; the fake, briefly).

Switches (`Switches`): `duplicate` copies of every delivery, `hold` events until `flush()`
(`reorder` flushes them newest first), `delay_seconds` before each delivery, `fail_deliveries`
(the next N attempts are dropped as if the network failed) and `fail_requests` (the next N API
requests answer HTTP 500, handled in the app).
"""

import asyncio
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header value for `payload` signed with `secret` at `timestamp`."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@dataclass
class Switches:
    """Test switches; see the module docstring."""

    duplicate: int = 1
    hold: bool = False
    reorder: bool = False
    delay_seconds: float = 0.0
    fail_deliveries: int = 0
    fail_requests: int = 0
    retry_delays: list[float] = field(default_factory=lambda: [0.5, 1, 2, 4, 8, 15, 30])


@dataclass
class Delivery:
    """One attempt's record, for `GET /_fake/deliveries`."""

    event_id: str
    event_type: str
    url: str
    attempt: int
    status: int | None
    at: float


class Deliverer:
    """Queues events to every enabled endpoint and delivers them in the background."""

    def __init__(self, secret: str, endpoints: dict[str, dict[str, Any]]) -> None:
        self.secret = secret
        self.endpoints = endpoints
        self.switches = Switches()
        self.log: list[Delivery] = []
        self.held: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[tuple[dict[str, Any], str, int]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._runner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=10)
        self._runner = asyncio.create_task(self._run())

    async def stop(self) -> None:
        for task in [self._runner, *self._tasks]:
            if task is not None:
                task.cancel()
        if self._client is not None:
            await self._client.aclose()

    def reset(self) -> None:
        self.switches = Switches()
        self.log.clear()
        self.held.clear()

    def _wanted(self, evt: dict[str, Any]) -> list[str]:
        return [we["url"] for we in self.endpoints.values()
                if we["status"] == "enabled"
                and ("*" in we["enabled_events"] or evt["type"] in we["enabled_events"])]

    def publish(self, evt: dict[str, Any]) -> None:
        """Called for each new event (from the request handler, in the server's loop)."""
        if self.switches.hold or self.switches.reorder:
            self.held.append(evt)
            return
        self._enqueue(evt)

    def _enqueue(self, evt: dict[str, Any]) -> None:
        for url in self._wanted(evt):
            for _ in range(max(1, self.switches.duplicate)):
                self._queue.put_nowait((evt, url, 1))

    def flush(self) -> int:
        """Release held events (newest first when `reorder`); returns how many."""
        held, self.held = self.held, []
        for evt in reversed(held) if self.switches.reorder else held:
            self._enqueue(evt)
        return len(held)

    async def _run(self) -> None:
        while True:
            evt, url, attempt = await self._queue.get()
            task = asyncio.create_task(self._deliver(evt, url, attempt))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            # one at a time keeps the queue's order (the reorder switch relies on it)
            await asyncio.wait([task])

    async def send(self, evt: dict[str, Any], url: str, *, timestamp: int | None = None,
                   secret: str | None = None) -> int | None:
        """POST `evt` to `url` signed with `secret` (default: the endpoint secret) at
        `timestamp`; returns the HTTP status or None when the request failed."""
        assert self._client is not None
        payload = json.dumps(evt, indent=2).encode()
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Stripe-Signature": sign(payload, secret or self.secret, timestamp),
                   "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}
        try:
            response = await self._client.post(url, content=payload, headers=headers)
        except httpx.HTTPError as exc:
            log.info("webhook %s to %s failed: %s", evt["id"], url, exc)
            return None
        return response.status_code

    async def _deliver(self, evt: dict[str, Any], url: str, attempt: int) -> None:
        if self.switches.delay_seconds:
            await asyncio.sleep(self.switches.delay_seconds)
        if self.switches.fail_deliveries > 0:
            self.switches.fail_deliveries -= 1
            status: int | None = None
        else:
            status = await self.send(evt, url)
        self.log.append(Delivery(evt["id"], evt["type"], url, attempt, status, time.time()))
        if status is not None and 200 <= status < 300:
            return
        delays = self.switches.retry_delays
        if attempt <= len(delays):
            asyncio.get_running_loop().call_later(
                delays[attempt - 1], self._queue.put_nowait, (evt, url, attempt + 1)
            )
