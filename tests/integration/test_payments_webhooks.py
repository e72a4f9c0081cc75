"""Stripe webhooks through the ingress: signatures checked with the real SDK (bad or older than
300 s -> 400), and duplicated, reordered deliveries reconciled once per invoice."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts import StripeEventReceived
from services.common.ops import OpsServer, ops_app
from services.payments import domain, handlers
from services.payments.handlers import Deps
from services.payments.settings import PaymentsSettings
from services.payments.webhooks import webhook_route
from tests.support.polling import eventually
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake, issued_invoice, outbox_events

pytestmark = pytest.mark.integration
ISSUED = datetime(2013, 8, 1, tzinfo=UTC)


class Received:
    """The ingress under test, publishing into a list instead of Kafka."""

    def __init__(self) -> None:
        self.events: list[StripeEventReceived] = []
        self.url = ""

    async def wait_for(self, count: int, limit: float = 60.0) -> None:
        await eventually(lambda: len(self.events) >= count, seconds=limit,
                         what=f"{count} webhooks to arrive", interval=0.05)


@pytest.fixture
async def ingress(payments_settings: PaymentsSettings) -> AsyncIterator[Received]:
    received = Received()

    async def publish(event: StripeEventReceived, key: str) -> None:
        received.events.append(event)

    async def ready() -> dict[str, bool]:
        return {"kafka": True}

    route = webhook_route(payments_settings, publish)
    server = OpsServer(ops_app(ready, [route]), "127.0.0.1", 0)
    port = await server.start()
    received.url = f"http://127.0.0.1:{port}{payments_settings.stripe_webhooks_path}"
    yield received
    await server.stop()


async def test_badly_signed_and_stale_webhooks_are_refused_with_400(
    payments_deps: Deps, stripe_fake: StripeFake, ingress: Received
) -> None:
    await payments_deps.gateway.register_webhook(ingress.url)
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    events = stripe_fake.events()
    await ingress.wait_for(len(events))
    assert all(e.payload["livemode"] is False for e in ingress.events)
    evt = events[-1]["id"]

    assert await stripe_fake.send(evt, secret="whsec_not_the_secret") == [400]
    assert await stripe_fake.send(evt, age_seconds=301) == [400]
    assert await stripe_fake.send(evt, age_seconds=240) == [200]
    assert len(ingress.events) == len(events) + 1
    assert ingress.events[-1].event_id == evt


async def test_duplicated_and_reversed_webhooks_settle_a_lost_charge_once(
    payments_deps: Deps, stripe_fake: StripeFake, ingress: Received, mongo_db: Any
) -> None:
    """Attempt 1 is declined (reported from the API answer). Attempt 2 succeeds at Stripe but
    its answer is lost (the worker died), so only the webhook can report it; deliveries come
    twice and newest first, so `payment_failed` of attempt 1 arrives after `succeeded`."""
    await payments_deps.gateway.register_webhook(ingress.url)
    await handlers.setup_method("acme", "pm_card_chargeCustomerFail", payments_deps)
    invoice = issued_invoice()
    assert await handlers.handle_invoice_issued(invoice, payments_deps) == "failed"
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    await ingress.wait_for(len(stripe_fake.events()))
    ingress.events.clear()

    stripe_fake.switches(hold=True, reorder=True, duplicate=2)
    customer = await payments_deps.store.customer("acme")
    assert customer is not None
    retry_at = ISSUED + timedelta(days=3, hours=2)
    assert await payments_deps.store.mark_attempt(invoice.invoice_id, 1, retry_at)
    lost = await payments_deps.gateway.charge(
        customer_id=customer["customer_id"], payment_method_id=customer["payment_method_id"],
        amount=invoice.amount, currency=invoice.currency,
        idempotency_key=domain.idempotency_key(invoice.invoice_id, 2),
        metadata={"tenant_id": "acme", "invoice_id": invoice.invoice_id,
                  "invoice_number": invoice.invoice_number, "attempt": "2"},
    )
    assert lost.succeeded
    held = stripe_fake.flush()
    await ingress.wait_for(2 * held)
    failed_evt = stripe_fake.events("payment_intent.payment_failed")[0]["id"]
    assert await stripe_fake.send(failed_evt) == [200]  # a late copy of attempt 1's failure
    await ingress.wait_for(2 * held + 1)

    types = [e.stripe_event_type for e in ingress.events]
    assert types[:3] == ["payment_intent.succeeded", "payment_intent.succeeded",
                         "charge.succeeded"]  # newest first, each twice
    assert types[-1] == "payment_intent.payment_failed"
    decisions = [await handlers.handle_stripe_event(e, payments_deps) for e in ingress.events]
    assert decisions.count("succeed") == 1
    assert "fail" not in decisions

    events = await outbox_events(mongo_db)
    assert [type(e).__name__ for e in events] == ["PaymentFailed", "PaymentSucceeded"]
    assert events[1].payment_reference == lost.payment_intent_id and events[1].attempt == 2
    assert events[1].paid_at == retry_at  # dated by the retry that made the charge
    # the retry run that "died" runs again: Stripe replays, nothing is paid twice
    assert await handlers.run_due_retries(ISSUED + timedelta(days=4), payments_deps) == 0
    assert len(await outbox_events(mongo_db)) == 2
    assert len(stripe_fake.intents()) == 2


async def test_a_refund_webhook_is_recorded_on_the_invoice(
    payments_deps: Deps, stripe_fake: StripeFake, ingress: Received
) -> None:
    await payments_deps.gateway.register_webhook(ingress.url)
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    invoice = issued_invoice()
    await handlers.handle_invoice_issued(invoice, payments_deps)
    record = await payments_deps.store.invoice(invoice.invoice_id)
    assert record is not None and record.payment_reference
    client = payments_deps.gateway._client  # type: ignore[attr-defined]
    await client.v1.refunds.create_async(params={"payment_intent": record.payment_reference,
                                                 "amount": 900})
    await ingress.wait_for(len(stripe_fake.events()))
    for event in ingress.events:
        await handlers.handle_stripe_event(event, payments_deps)
    refunded = await payments_deps.store.invoice(invoice.invoice_id)
    assert refunded is not None and refunded.refunded_amount == 900
    assert refunded.status == "paid"


async def test_failed_and_refused_deliveries_are_retried_until_the_ingress_accepts_them(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake
) -> None:
    accepted: list[str] = []
    refusals = 1

    async def publish(event: StripeEventReceived, key: str) -> None:
        nonlocal refusals
        if refusals:  # the broker is down once: the ingress answers 503
            refusals -= 1
            raise ConnectionError("broker unavailable")
        accepted.append(event.event_id)

    async def ready() -> dict[str, bool]:
        return {"kafka": True}

    server = OpsServer(ops_app(ready, [webhook_route(payments_settings, publish)]),
                       "127.0.0.1", 0)
    port = await server.start()
    try:
        stripe_fake.switches(fail_deliveries=2, retry_delays=[0.1, 0.1, 0.1, 0.1])
        await payments_deps.gateway.register_webhook(
            f"http://127.0.0.1:{port}{payments_settings.stripe_webhooks_path}")
        await handlers.setup_method("acme", "pm_card_visa", payments_deps)
        wanted = {e["id"] for e in stripe_fake.events()}
        await eventually(lambda: set(accepted) == wanted, seconds=60, interval=0.05,
                         what=f"every event of {wanted} accepted")
    finally:
        await server.stop()
    statuses = [d["status"] for d in stripe_fake.deliveries()]
    assert statuses.count(None) == 2 and statuses.count(503) == 1
    assert len(accepted) == len(wanted)
