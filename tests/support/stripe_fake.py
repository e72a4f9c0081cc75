"""The `stripe_fake` fixture: the project's fake Stripe API served over HTTP for tests.

One server per session runs in a background thread (its own event loop), so the real
`stripe` SDK and webhook deliveries talk to it over real sockets; each test gets it reset.
Import the fixtures into a test module with `from tests.support.stripe_fake import *  #
noqa: F403` (`__all__` lists only the fixtures), or list the module in `pytest_plugins`.
"""

import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from contracts import InvoiceIssued, LineItem
from services.devstack.stripe_fake import create_app
from services.payments.bootstrap import open_deps
from services.payments.settings import PaymentsSettings
from tests.support.polling import wait_until

__all__ = ["payments_deps", "payments_settings", "stripe_fake", "stripe_fake_server"]
WEBHOOK_SECRET = "whsec_test_fake_secret"
API_KEY = "sk_test_fake"


class StripeFakeServer:
    """The fake on 127.0.0.1 (a free port) in a daemon thread."""

    def __init__(self, secret: str = WEBHOOK_SECRET) -> None:
        self.app = create_app(secret)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0

    def start(self, timeout: float = 30.0) -> None:
        self.thread.start()

        def started() -> bool:
            if not self.thread.is_alive():
                raise RuntimeError("the Stripe fake stopped while starting")
            return bool(self.server.started)

        wait_until(started, what="the Stripe fake to start", seconds=timeout, interval=0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class StripeFake:
    """A reset fake: its URL, secrets, and the fake-only admin API."""

    base_url: str
    webhook_secret: str
    api_key: str
    server: StripeFakeServer

    def _admin(self, method: str, path: str, json: Any = None) -> Any:
        response = httpx.request(method, f"{self.base_url}{path}", json=json, timeout=30)
        response.raise_for_status()
        return response.json()

    def switches(self, **changes: Any) -> dict[str, Any]:
        """Set delivery/request switches (duplicate, hold, reorder, delay_seconds,
        fail_deliveries, fail_requests, retry_delays)."""
        result: dict[str, Any] = self._admin("POST", "/_fake/switches", changes)
        return result

    def flush(self) -> int:
        return int(self._admin("POST", "/_fake/flush")["released"])

    def reset(self) -> None:
        self._admin("POST", "/_fake/reset")

    def deliveries(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._admin("GET", "/_fake/deliveries")
        return result

    async def send(self, event_id: str, **options: Any) -> list[int | None]:
        """Deliver one event now (options: url, age_seconds, secret); the endpoint statuses.
        Async: the endpoint may be served by the calling test's own event loop."""
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                f"{self.base_url}/_fake/events/{event_id}/send", json=options)
        response.raise_for_status()
        return list(response.json()["statuses"])

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Events, oldest first (read through the API like a client would)."""
        params = {"limit": "100", **({"type": event_type} if event_type else {})}
        response = httpx.get(f"{self.base_url}/v1/events", params=params, timeout=30,
                             headers={"Authorization": f"Bearer {self.api_key}"})
        response.raise_for_status()
        return list(reversed(response.json()["data"]))

    def intents(self) -> list[dict[str, Any]]:
        """Every PaymentIntent the fake holds (a snapshot)."""
        return [dict(pi) for pi in list(self.server.app.state.stripe.intents.values())]


@pytest.fixture(scope="session")
def stripe_fake_server() -> Iterator[StripeFakeServer]:
    server = StripeFakeServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stripe_fake(stripe_fake_server: StripeFakeServer) -> Iterator[StripeFake]:
    """The session's fake Stripe, reset for this test (objects, events, switches)."""
    fake = StripeFake(f"http://127.0.0.1:{stripe_fake_server.port}", WEBHOOK_SECRET, API_KEY,
                      stripe_fake_server)
    fake.reset()
    yield fake
    fake.reset()


# -- payments fixtures shared by the payments test modules --------------------------------

def issued_invoice(number: int = 1, tenant: str = "acme", amount: int = 4900,
                   occurred_at: datetime | None = None, currency: str = "USD") -> InvoiceIssued:
    """An `InvoiceIssued` for tests (issued 2013-08-01 unless told)."""
    at = occurred_at or datetime(2013, 8, 1, tzinfo=UTC)
    return InvoiceIssued(
        occurred_at=at, invoice_id=f"inv-{tenant}-{number}",
        invoice_number=f"INV-2013-{number:04d}", tenant_id=tenant, amount=amount,
        currency=currency, issue_date=at.date(), due_date=(at + timedelta(days=14)).date(),
        period_start=at - timedelta(days=31), period_end=at,
        line_items=(LineItem(kind="flat_fee", description="Base fee", amount=amount),),
        billing_email=f"billing@{tenant}.example", email_notifications=True, config_version=1,
    )


async def outbox_events(db: Any) -> list[Any]:
    """The payments outbox as contract objects, in write order."""
    from contracts.events import ALL_EVENTS

    by_name = {cls.__name__: cls for cls in ALL_EVENTS}
    docs = await db["payments_outbox"].find().sort("seq", 1).to_list()
    return [by_name[d["type"]].model_validate_json(d["payload"]) for d in docs]


@pytest.fixture
def payments_settings(billing_env: dict[str, str], stripe_fake: StripeFake) -> PaymentsSettings:
    """Payments settings for this test: its database and topics, the fake Stripe, event clock,
    quick retries, no dunning loop."""
    return PaymentsSettings(
        stripe_api_base=stripe_fake.base_url, stripe_api_key=stripe_fake.api_key,
        stripe_webhook_secret=stripe_fake.webhook_secret, stripe_retry_base_seconds=0.02,
        clock_mode="event", payments_dunning_interval_seconds=0, stripe_webhooks_port=0,
    )


@pytest.fixture
async def payments_deps(payments_settings: PaymentsSettings, mongo_db: Any) -> AsyncIterator[Any]:
    """Handler dependencies: the MongoDB store (this test's database) and the Stripe gateway."""
    async with open_deps(payments_settings) as deps:
        yield deps
