"""One suite for the `PaymentGateway` (and the Stripe calls beside it), run against two servers:
the project's fake (`stripe_fake`) and localstripe, an independent fake nobody here wrote. Both
should behave as Stripe test mode does (docs/stripe-fake.md); where localstripe deviates from
Stripe's documented behaviour, `DEVIATIONS` says how, and the test is a strict xfail there, so
it turns red the day localstripe catches up (then drop the entry)."""

from typing import Any

import httpx
import pytest
import stripe

from contracts import StripeEventReceived
from services.common.errors import PermanentError
from services.common.ops import OpsServer, ops_app
from services.payments.adapters.stripe_gateway import CardDeclined, StripeGateway
from services.payments.settings import PaymentsSettings
from services.payments.webhooks import webhook_route
from tests.support.localstripe import *  # noqa: F403 (fixtures)
from tests.support.polling import eventually
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_servers import *  # noqa: F403 (fixtures)
from tests.support.stripe_servers import Server

pytestmark = pytest.mark.integration
UNKNOWN_TOKEN = "localstripe knows only pm_card_visa, pm_card_visa_chargeDeclined and " \
    "pm_card_chargeCustomerFail among Stripe's test tokens: it answers 404 for this one"
DEVIATIONS: dict[str, dict[str, str]] = {
    "fake": {},
    "localstripe": {
        "idempotency": "localstripe ignores Idempotency-Key: a repeated request creates a "
                       "second object instead of replaying the first answer",
        "pm_card_chargeDeclined": UNKNOWN_TOKEN,
        "pm_card_chargeDeclinedInsufficientFunds": UNKNOWN_TOKEN,
        "card_error": "localstripe answers a decline with HTTP 402 but error type "
                      "invalid_request_error and no decline_code (Stripe: type card_error "
                      "with decline_code)",
        "declined_intent": "localstripe's 402 for a declined PaymentIntent carries neither the "
                           "intent nor a decline_code",
        "list_by_customer": "localstripe's GET /v1/payment_intents refuses the customer "
                            "filter (400 'Unexpected customer')",
        "refund_events": "localstripe sends no refund.created / charge.refunded events",
        "webhook_endpoints": "localstripe has no /v1/webhook_endpoints (webhooks are set "
                             "through its own /_config/webhooks route)",
    },
}


def deviates(request: pytest.FixtureRequest, server: Server, *keys: str) -> None:
    """Mark this test a strict xfail when `server` deviates from Stripe in one of `keys`."""
    reasons = [DEVIATIONS[server.name][k] for k in keys if k in DEVIATIONS[server.name]]
    if reasons:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason="; ".join(reasons)))


async def new_customer(gateway: StripeGateway, token: str) -> tuple[str, str]:
    customer = await gateway.ensure_customer("acme", None)
    pm_id, _ = await gateway.attach_default(customer, token)
    return customer, pm_id


async def charge(gateway: StripeGateway, customer: str, pm_id: str, key: str,
                 amount: int = 4900) -> Any:
    return await gateway.charge(customer_id=customer, payment_method_id=pm_id, amount=amount,
                                currency="USD", idempotency_key=key,
                                metadata={"tenant_id": "acme", "invoice_id": key})


# -- customers and payment methods -----------------------------------------------------------

async def test_a_new_tenant_gets_a_customer_tagged_with_its_id_and_a_known_one_is_kept(
    gateway: StripeGateway, client: stripe.StripeClient
) -> None:
    customer = await gateway.ensure_customer("acme", None)
    assert customer.startswith("cus_")
    assert (await client.v1.customers.retrieve_async(customer)).metadata["tenant_id"] == "acme"
    assert await gateway.ensure_customer("acme", customer) == customer


async def test_creating_a_tenants_customer_twice_creates_one_customer(
    request: pytest.FixtureRequest, server: Server, gateway: StripeGateway
) -> None:
    deviates(request, server, "idempotency")
    assert await gateway.ensure_customer("acme", None) == await gateway.ensure_customer(
        "acme", None)


async def test_pm_card_visa_attaches_and_becomes_the_customers_default(
    gateway: StripeGateway, client: stripe.StripeClient
) -> None:
    customer = await gateway.ensure_customer("acme", None)
    pm_id, description = await gateway.attach_default(customer, "pm_card_visa")
    assert pm_id.startswith("pm_") and pm_id != "pm_card_visa"
    assert description == "card visa 4242"
    cus = await client.v1.customers.retrieve_async(customer)
    assert cus.invoice_settings.default_payment_method == pm_id


@pytest.mark.parametrize("token", [
    "pm_card_chargeDeclined", "pm_card_visa_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds"])
async def test_a_declining_card_is_refused_on_attach_and_the_default_stays(
    request: pytest.FixtureRequest, server: Server, gateway: StripeGateway,
    client: stripe.StripeClient, token: str
) -> None:
    deviates(request, server, token)
    customer, visa = await new_customer(gateway, "pm_card_visa")
    with pytest.raises(CardDeclined) as declined:
        await gateway.attach_default(customer, token)
    assert declined.value.reason == "card_declined" and token in str(declined.value)
    cus = await client.v1.customers.retrieve_async(customer)
    assert cus.invoice_settings.default_payment_method == visa


@pytest.mark.parametrize(("token", "decline_code"), [
    ("pm_card_chargeDeclined", "generic_decline"),
    ("pm_card_visa_chargeDeclined", "generic_decline"),
    ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds")])
async def test_the_attach_decline_is_a_402_card_error_with_stripes_decline_code(
    request: pytest.FixtureRequest, server: Server, gateway: StripeGateway, token: str,
    decline_code: str
) -> None:
    deviates(request, server, token, "card_error")
    customer = await gateway.ensure_customer("acme", None)
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{server.base_url}/v1/payment_methods/{token}/attach", data={"customer": customer},
            headers={"Authorization": f"Bearer {server.api_key}"})
    error = response.json()["error"]
    assert response.status_code == 402
    assert (error["type"], error["code"], error.get("decline_code")) == (
        "card_error", "card_declined", decline_code)
    with pytest.raises(CardDeclined) as declined:
        await gateway.attach_default(customer, token)
    assert declined.value.decline_code == decline_code


# -- charges ---------------------------------------------------------------------------------

async def test_a_charge_with_pm_card_visa_succeeds_and_reads_back_as_succeeded(
    gateway: StripeGateway
) -> None:
    customer, pm_id = await new_customer(gateway, "pm_card_visa")
    result = await charge(gateway, customer, pm_id, "inv-1-attempt-1")
    assert result.succeeded and result.payment_intent_id.startswith("pi_")
    assert result.payment_method_id == pm_id
    again = await gateway.intent(result.payment_intent_id)
    assert again.status == "succeeded" and again.result.succeeded
    assert (again.amount, again.currency) == (4900, "USD")


async def test_the_same_idempotency_key_charges_once(
    request: pytest.FixtureRequest, server: Server, gateway: StripeGateway
) -> None:
    deviates(request, server, "idempotency")
    customer, pm_id = await new_customer(gateway, "pm_card_visa")
    first = await charge(gateway, customer, pm_id, "inv-1-attempt-1")
    second = await charge(gateway, customer, pm_id, "inv-1-attempt-1")
    assert second.payment_intent_id == first.payment_intent_id


async def test_pm_card_charge_customer_fail_attaches_and_every_charge_is_declined(
    gateway: StripeGateway
) -> None:
    customer = await gateway.ensure_customer("globex", None)
    pm_id, description = await gateway.attach_default(customer, "pm_card_chargeCustomerFail")
    assert description == "card visa 0341"
    for attempt in (1, 2):
        result = await charge(gateway, customer, pm_id, f"inv-9-attempt-{attempt}")
        assert not result.succeeded and result.failure_code == "card_declined"
        assert result.failure_message == "Your card was declined."


async def test_a_declined_charge_names_its_intent_and_stripes_decline_code(
    request: pytest.FixtureRequest, server: Server, gateway: StripeGateway
) -> None:
    deviates(request, server, "declined_intent")
    customer, pm_id = await new_customer(gateway, "pm_card_chargeCustomerFail")
    result = await charge(gateway, customer, pm_id, "inv-9-attempt-1")
    assert result.decline_code == "generic_decline"
    assert result.payment_intent_id is not None
    again = await gateway.intent(result.payment_intent_id)
    assert again.status == "requires_payment_method" and not again.result.succeeded


async def test_an_invoices_payment_intents_are_found_by_listing_the_customers(
    request: pytest.FixtureRequest, server: Server, gateway: StripeGateway,
    client: stripe.StripeClient
) -> None:
    deviates(request, server, "list_by_customer")
    customer, pm_id = await new_customer(gateway, "pm_card_visa")
    wanted = await charge(gateway, customer, pm_id, "inv-2-attempt-1")
    await charge(gateway, customer, pm_id, "inv-3-attempt-1")
    listed = await client.v1.payment_intents.list_async(
        params={"customer": customer, "limit": 100})
    assert listed.object == "list" and listed.has_more is False
    assert [pi.id for pi in listed.data
            if pi.metadata["invoice_id"] == "inv-2-attempt-1"] == [wanted.payment_intent_id]


# -- refunds ---------------------------------------------------------------------------------

async def test_a_partial_refund_is_a_succeeded_refund_of_that_amount(
    gateway: StripeGateway, client: stripe.StripeClient
) -> None:
    customer, pm_id = await new_customer(gateway, "pm_card_visa")
    paid = await charge(gateway, customer, pm_id, "inv-4-attempt-1")
    refund = await client.v1.refunds.create_async(
        params={"payment_intent": paid.payment_intent_id, "amount": 1000})
    assert (refund.object, refund.amount, refund.status, refund.currency) == (
        "refund", 1000, "succeeded", "usd")
    assert (await client.v1.refunds.retrieve_async(refund.id)).amount == 1000


async def test_a_refund_is_announced_by_refund_created_and_charge_refunded(
    request: pytest.FixtureRequest, server: Server, gateway: StripeGateway,
    client: stripe.StripeClient
) -> None:
    deviates(request, server, "refund_events")
    customer, pm_id = await new_customer(gateway, "pm_card_visa")
    paid = await charge(gateway, customer, pm_id, "inv-5-attempt-1")
    await client.v1.refunds.create_async(params={"payment_intent": paid.payment_intent_id})
    events = (await client.v1.events.list_async(params={"limit": 100})).data
    by_type = {e.type: e.data.object for e in events}
    assert by_type["refund.created"]["amount"] == 4900
    assert by_type["charge.refunded"]["amount_refunded"] == 4900


async def test_refunding_a_declined_payment_is_refused(gateway: StripeGateway,
                                                        client: stripe.StripeClient) -> None:
    customer, pm_id = await new_customer(gateway, "pm_card_chargeCustomerFail")
    declined = await charge(gateway, customer, pm_id, "inv-6-attempt-1")
    intent_id = declined.payment_intent_id
    if intent_id is None:  # localstripe does not say which intent was declined: list them
        intent_id = (await client.v1.payment_intents.list_async(params={"limit": 1})).data[0].id
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.refunds.create_async(params={"payment_intent": intent_id})


# -- webhooks --------------------------------------------------------------------------------

async def test_webhooks_arrive_signed_as_the_ingress_verifies_them(
    server: Server, settings: PaymentsSettings, gateway: StripeGateway
) -> None:
    received: list[StripeEventReceived] = []

    async def publish(event: StripeEventReceived, key: str) -> None:
        received.append(event)

    async def ready() -> dict[str, bool]:
        return {"stripe": True}

    ingress = OpsServer(ops_app(ready, [webhook_route(settings, publish)]), "127.0.0.1", 0)
    port = await ingress.start()
    try:
        await server.route_webhooks(f"http://127.0.0.1:{port}{settings.stripe_webhooks_path}")
        customer = await gateway.ensure_customer("acme", None)

        def created() -> list[StripeEventReceived]:
            return [e for e in received if e.stripe_event_type == "customer.created"
                    and e.payload["data"]["object"]["id"] == customer]

        await eventually(created, what="a verified customer.created webhook", seconds=30,
                         interval=0.05)
    finally:
        await ingress.stop()
    assert created()[0].payload["livemode"] is False


async def test_a_webhook_endpoint_is_registered_through_the_api(
    request: pytest.FixtureRequest, server: Server, gateway: StripeGateway
) -> None:
    deviates(request, server, "webhook_endpoints")
    assert (await gateway.register_webhook("http://127.0.0.1:9/stripe/webhook")).startswith(
        "we_")


async def test_an_unknown_payment_method_is_a_permanent_error(gateway: StripeGateway) -> None:
    customer = await gateway.ensure_customer("acme", None)
    with pytest.raises(PermanentError) as refused:
        await gateway.attach_default(customer, "pm_doesNotExist")
    assert refused.value.reason == "stripe_rejected"
