"""The `server` fixture, parametrised over the two Stripe servers the gateway's contract suite
runs against (the project's fake and localstripe; docs/stripe-fake.md, "Checked against
localstripe"), and a `StripeGateway` (`gateway`) and its SDK client (`client`) for it."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
import stripe

from services.payments.adapters.stripe_gateway import StripeGateway
from services.payments.settings import PaymentsSettings
from tests.support.localstripe import Localstripe
from tests.support.stripe_fake import StripeFake

__all__ = ["client", "gateway", "server", "settings"]
LOCALSTRIPE_SECRET = "whsec_contract_localstripe"


@dataclass
class Server:
    """A Stripe server under test: where it is, and how to route its webhooks to a URL."""

    name: str
    base_url: str
    api_key: str
    webhook_secret: str
    route_webhooks: Callable[[str], Awaitable[None]]


@pytest.fixture(params=["fake", "localstripe"])
def server(request: pytest.FixtureRequest) -> Server:
    """Each test runs once against the fake and once against localstripe, both emptied."""
    if request.param == "fake":
        fake: StripeFake = request.getfixturevalue("stripe_fake")

        async def register(url: str) -> None:
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.post(
                    f"{fake.base_url}/v1/webhook_endpoints", data={"url": url},
                    headers={"Authorization": f"Bearer {fake.api_key}"})
            response.raise_for_status()

        return Server("fake", fake.base_url, fake.api_key, fake.webhook_secret, register)
    local: Localstripe = request.getfixturevalue("localstripe")

    async def configure(url: str) -> None:
        await asyncio.to_thread(local.configure_webhook, url, LOCALSTRIPE_SECRET)

    return Server("localstripe", local.base_url, local.api_key, LOCALSTRIPE_SECRET, configure)


@pytest.fixture
def settings(server: Server) -> PaymentsSettings:
    """Payments settings pointing at `server`; no retries of transient errors."""
    return PaymentsSettings(stripe_api_base=server.base_url, stripe_api_key=server.api_key,
                            stripe_webhook_secret=server.webhook_secret, stripe_retries=0,
                            stripe_retry_base_seconds=0.01, stripe_webhooks_port=0)


@pytest.fixture
async def gateway(settings: PaymentsSettings) -> AsyncIterator[StripeGateway]:
    """The gateway under test, closed afterwards."""
    gw = StripeGateway(settings)
    yield gw
    await gw.close()


@pytest.fixture
def client(gateway: StripeGateway) -> stripe.StripeClient:
    """The gateway's own SDK client, for calls the gateway does not make (yet)."""
    return gateway._client
