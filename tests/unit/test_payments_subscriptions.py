"""The payments worker's subscriptions, without a broker: its public names (`CONSUMES`,
`OUTBOXES`) are what the worker really subscribes to, and FastStream's in-memory
`TestKafkaBroker` shows each subscriber calling its handler (with the in-memory store) or
dead-lettering bad bytes."""

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from faststream.kafka import TestKafkaBroker

from contracts import TOPIC_DEAD_LETTER, TOPIC_INVOICE, TOPIC_STRIPE_EVENTS
from contracts.invoices import InvoiceStatus
from services.common.worker import publish_event
from services.payments import api
from services.payments.adapters.memory_store import InMemoryPaymentsStore
from services.payments.adapters.stripe_gateway import PaymentGateway
from services.payments.app import build_broker
from services.payments.charging import Deps
from services.payments.settings import PaymentsSettings
from tests.support.stripe_fake import issued_invoice

pytestmark = pytest.mark.unit
SETTINGS = PaymentsSettings(topic_prefix="t.", stripe_webhook_secret="whsec_unit",
                            clock_mode="event")


def test_the_public_names_list_the_payments_subscriptions_and_outbox() -> None:
    assert api.CONSUMES == ((TOPIC_INVOICE, "payments"), (TOPIC_STRIPE_EVENTS, "payments"))
    assert api.OUTBOXES == ("payments_outbox",)
    assert (api.SERVICE, api.WEBHOOKS_SERVICE) == ("payments", "stripe-webhooks")


def test_the_worker_subscribes_to_exactly_what_consumes_lists() -> None:
    broker = build_broker(Deps(SETTINGS, InMemoryPaymentsStore(), cast(PaymentGateway, None)))
    subscribed = {(name, sub.group_id) for sub in broker.subscribers for name in sub.topic_names}
    assert subscribed == {(SETTINGS.topic(t), SETTINGS.group(g)) for t, g in api.CONSUMES}


async def test_an_issued_invoice_reaches_its_handler_and_bad_bytes_are_dead_lettered() -> None:
    store = InMemoryPaymentsStore()
    # no Stripe customer for the tenant: the handler records the invoice without calling Stripe
    broker = build_broker(Deps(SETTINGS, store, cast(PaymentGateway, None)))
    dead: list[dict[str, Any]] = []

    @broker.subscriber(SETTINGS.topic(TOPIC_DEAD_LETTER))  # type: ignore[untyped-decorator]
    async def on_dead(body: dict[str, Any]) -> None:
        dead.append(body)

    invoice = issued_invoice(occurred_at=datetime(2013, 8, 1, tzinfo=UTC))
    async with TestKafkaBroker(broker) as test_broker:
        await publish_event(test_broker, SETTINGS, invoice, TOPIC_INVOICE, "acme")
        await test_broker.publish(b"{not json", SETTINGS.topic(TOPIC_INVOICE), key=b"acme",
                                  headers={"event-type": "InvoiceIssued"})
    record = await store.invoice(invoice.invoice_id)
    assert record is not None and record.status is InvoiceStatus.pending_payment
    assert await store.processed("payments.invoices", invoice.event_id)
    assert await store.outbox_events() == []
    assert [(d["reason"], d["service"]) for d in dead] == [("invalid_json", "payments")]
