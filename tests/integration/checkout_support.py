"""Helpers for the Pay now and Checkout tests (no tests here): the webhook ingress route
publishing into a list (`Webhooks`), and a payer filling in the Stripe fake's hosted page."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from contracts import StripeEventReceived
from services.api.settings import ApiSettings
from services.common.ops import OpsServer, ops_app
from services.payments import handlers
from services.payments.handlers import Deps
from services.payments.settings import PaymentsSettings
from services.payments.webhooks import webhook_route
from tests.support.api import ApiHarness, api_harness
from tests.support.polling import eventually


class Webhooks:
    """Verified Stripe events as the ingress would publish them, in arrival order."""

    def __init__(self) -> None:
        self.events: list[StripeEventReceived] = []
        self.url = ""

    async def wait_for_type(self, event_type: str, count: int = 1) -> None:
        """Until `count` events of `event_type` have arrived (a deadline, then it fails)."""
        await eventually(
            lambda: sum(e.stripe_event_type == event_type for e in self.events) >= count,
            what=f"{count} {event_type} webhooks", seconds=60, interval=0.05)

    async def reconcile(self, deps: Deps) -> list[tuple[str, str]]:
        """Hand every event received so far to the payments handler (then forget them);
        (event type, decision) pairs."""
        found, self.events = self.events, []
        return [(e.stripe_event_type, await handlers.handle_stripe_event(e, deps))
                for e in found]


@asynccontextmanager
async def webhook_ingress(settings: PaymentsSettings, deps: Deps) -> AsyncIterator[Webhooks]:
    """The real webhook route (signatures checked) on a free port, registered with Stripe."""
    hooks = Webhooks()

    async def publish(event: StripeEventReceived, key: str) -> None:
        hooks.events.append(event)

    async def ready() -> dict[str, bool]:
        return {"kafka": True}

    server = OpsServer(ops_app(ready, [webhook_route(settings, publish)]), "127.0.0.1", 0)
    port = await server.start()
    hooks.url = f"http://127.0.0.1:{port}{settings.stripe_webhooks_path}"
    await deps.gateway.register_webhook(hooks.url)
    try:
        yield hooks
    finally:
        await server.stop()


async def fill_in_card(url: str, number: str) -> httpx.Response:
    """Open the hosted page at `url` and submit card `number` (expiry 12 / 34, CVC 987)."""
    async with httpx.AsyncClient(timeout=30) as client:
        page = await client.get(url)
        assert page.status_code == 200 and 'for="card_number"' in page.text, page.text[:300]
        return await client.post(url, data={"card_number": number, "expiry": "12 / 34",
                                            "cvc": "987", "name": "A. Payer"})


@asynccontextmanager
async def payments_api(payments_settings: PaymentsSettings) -> AsyncIterator[ApiHarness]:
    """The API with the test's payments settings (the Stripe fake, its database); the
    database is dropped afterwards."""
    settings = ApiSettings(**payments_settings.model_dump(
        include={"stripe_api_base", "stripe_api_key", "stripe_webhook_secret",
                 "stripe_retry_base_seconds", "clock_mode"}))
    async with api_harness(settings) as harness:
        yield harness
        await harness.ctx.client.drop_database(settings.mongo_db)


@pytest.fixture(name="api")
async def api_with_payments(payments_settings: PaymentsSettings) -> AsyncIterator[ApiHarness]:
    """The `api` fixture of modules that import it: `payments_api` for the test."""
    async with payments_api(payments_settings) as harness:
        yield harness


@pytest.fixture(name="hooks")
async def webhooks_fixture(payments_settings: PaymentsSettings,
                           payments_deps: Deps) -> AsyncIterator[Webhooks]:
    """The `hooks` fixture of modules that import it: `webhook_ingress` for the test."""
    async with webhook_ingress(payments_settings, payments_deps) as received:
        yield received
