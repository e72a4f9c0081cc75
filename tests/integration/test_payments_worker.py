"""The payments worker and the webhook ingress wired through real Kafka, in this process:
an `InvoiceIssued` delivered three times is charged once; Stripe's webhooks (each delivered
twice) reach the worker through `billing.stripe-events.v1` without a second payment; bad input
is dead-lettered; the manual-payment command publishes `PaymentSucceeded`. "Nothing else was
published" is shown, not waited out: every webhook was delivered, the worker's group committed
past every record it reads, its outbox holds nothing unpublished and the collector committed
past every record published."""

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from contracts import (
    TOPIC_DEAD_LETTER,
    TOPIC_INVOICE,
    TOPIC_PAYMENT,
    InvoiceStatusChanged,
)
from services.common.kafka import ensure_topics
from services.common.lag import committed_offsets, pending_partitions
from services.common.worker import make_broker, publish_event
from services.devstack.ports import free_port
from services.payments import api
from services.payments.app import run_payments
from services.payments.handlers import STRIPE_CONSUMER
from services.payments.settings import PaymentsSettings
from services.payments.webhooks import WebhookIngress
from tests.support.polling import eventually
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake, issued_invoice

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


class Collector:
    """Reads the payment and dead-letter topics in its own consumer group."""

    def __init__(self, settings: PaymentsSettings) -> None:
        self.payments: list[dict[str, Any]] = []
        self.dead: list[dict[str, Any]] = []
        self.broker = KafkaBroker(settings.kafka_bootstrap_servers, enable_idempotence=False)
        opts: dict[str, Any] = {"group_id": settings.group("collector"),
                                "auto_offset_reset": "earliest", "ack_policy": AckPolicy.ACK}

        @self.broker.subscriber(settings.topic(TOPIC_PAYMENT), **opts)
        async def on_payment(body: dict[str, Any]) -> None:
            self.payments.append(body)

        @self.broker.subscriber(settings.topic(TOPIC_DEAD_LETTER), **opts)
        async def on_dead(body: dict[str, Any]) -> None:
            self.dead.append(body)


async def caught_up(settings: PaymentsSettings, group: str, topics: list[str]) -> bool:
    """True when consumer group `group` (real name) committed past every record of `topics`."""
    committed = await committed_offsets(settings, group, [settings.topic(t) for t in topics])
    return bool(committed) and not await pending_partitions(settings, committed)


async def nothing_left(settings: PaymentsSettings, mongo_db: Any) -> bool:
    """Positive evidence that nothing more will reach the collector: the payments worker's
    group committed past every record it reads (offsets are committed only after the effects
    are durable), the payments outbox holds nothing unpublished, and the collector's group
    committed past every record on the payment and dead-letter topics."""
    groups: dict[str, list[str]] = {}
    for topic, group in api.CONSUMES:
        groups.setdefault(settings.group(group), []).append(topic)
    for group, topics in groups.items():
        if not await caught_up(settings, group, topics):
            return False
    for outbox in api.OUTBOXES:
        if await mongo_db[outbox].count_documents({"published": False}):
            return False
    return await caught_up(settings, settings.group("collector"),
                           [TOPIC_PAYMENT, TOPIC_DEAD_LETTER])


async def test_the_worker_charges_a_thrice_delivered_invoice_once_and_reconciles_webhooks(
    payments_settings: PaymentsSettings, stripe_fake: StripeFake, mongo_db: Any,
    subprocess_env: dict[str, str],
) -> None:
    settings = payments_settings
    stop = asyncio.Event()
    worker = asyncio.create_task(run_payments(settings, stop))
    ingress = WebhookIngress(settings)
    await ingress.start()
    collector = Collector(settings)
    publisher = make_broker(settings, name="test")
    try:
        await api.register_webhook_endpoint(settings, ingress.url)
        stripe_fake.switches(duplicate=2)
        await api.setup_payment_method(settings, "acme", "pm_card_visa")
        await publisher.start()
        invoice = issued_invoice()
        for _ in range(3):
            await publish_event(publisher, settings, invoice, TOPIC_INVOICE, "acme")
        changed = InvoiceStatusChanged(
            invoice_id=invoice.invoice_id, invoice_number=invoice.invoice_number,
            tenant_id="acme", previous_status="pending_payment", status="overdue",
            amount=invoice.amount, currency="USD", issue_date=invoice.issue_date,
            due_date=invoice.due_date, period_start=invoice.period_start,
            period_end=invoice.period_end, billing_email=invoice.billing_email,
            email_notifications=True,
        )
        await publish_event(publisher, settings, changed, TOPIC_INVOICE, "acme")
        await publisher.publish(b"{not json", settings.topic(TOPIC_INVOICE), key=b"acme",
                                headers={"event-type": "InvoiceIssued"})
        await collector.broker.start()

        async def all_webhooks_reconciled() -> bool:
            events = stripe_fake.events()
            if not any(e["type"] == "payment_intent.succeeded" for e in events):
                return False
            delivered = [d["event_id"] for d in stripe_fake.deliveries()
                         if d["status"] is not None and 200 <= d["status"] < 300]
            if any(delivered.count(e["id"]) < 2 for e in events):  # each is sent twice
                return False
            done = await mongo_db["processed_events"].count_documents(
                {"_id": {"$regex": f"^{STRIPE_CONSUMER}:"}})
            return bool(done == len(events))

        await eventually(all_webhooks_reconciled, what="the webhooks to be reconciled",
                         seconds=120)
        await eventually(lambda: collector.payments and collector.dead,
                         what="the payment and the dead letter", seconds=120)

        # a manual payment for another tenant's invoice, through the real command line
        other = issued_invoice(number=2, tenant="globex")
        await publish_event(publisher, settings, other, TOPIC_INVOICE, "globex")

        async def other_known() -> bool:
            found = await mongo_db["payments_invoices"].count_documents({"_id": other.invoice_id})
            return bool(found == 1)

        await eventually(other_known, what="the second invoice's projection", seconds=120)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "payments", "record", "--invoice",
            other.invoice_number, "--method", "ach", "--reference", "ACH-42",
            "--paid-on", "2013-08-09", cwd=ROOT, stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**subprocess_env, "BILLING_STRIPE_API_BASE": stripe_fake.base_url},
        )
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        await eventually(lambda: len(collector.payments) >= 2, what="the manual payment",
                         seconds=120)
        await eventually(lambda: nothing_left(settings, mongo_db),
                         what="every record consumed and the outbox drained", seconds=120)
    finally:
        await publisher.stop()
        await collector.broker.stop()
        await ingress.stop()
        stop.set()
        await asyncio.wait_for(worker, timeout=60)

    assert len([pi for pi in stripe_fake.intents()]) == 1
    # the outbox is relayed at least once (the worker's relay and the command's may both
    # publish an entry); consumers recognise a repeat by its event id
    distinct = {p["event_id"]: p for p in collector.payments}
    assert len(distinct) == 2, collector.payments
    card, manual = distinct.values()
    assert card["invoice_id"] == invoice.invoice_id
    assert card["payment_method"] == "card visa 4242"
    assert card["paid_at"].startswith("2013-08-01")
    assert (manual["payment_method"], manual["payment_reference"]) == ("ach", "ACH-42")
    assert manual["paid_at"].startswith("2013-08-09")
    assert [(d["reason"], d["service"]) for d in collector.dead] == [("invalid_json", "payments")]
    assert datetime.fromisoformat(card["paid_at"]) == datetime(2013, 8, 1, tzinfo=UTC)


async def test_a_stripe_outage_is_retried_while_it_lasts_and_the_invoice_is_then_charged(
    payments_settings: PaymentsSettings, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    port = free_port()
    settings = payments_settings.model_copy(update={
        "stripe_retries": 1, "payments_retry_cap_seconds": 0.2,
        "ops_port": port})
    await api.setup_payment_method(settings, "acme", "pm_card_visa")
    stripe_fake.switches(fail_requests=100_000)
    collector = Collector(settings)
    publisher = make_broker(settings, name="test")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_payments(settings, stop))
    await ensure_topics(settings)
    await publisher.start()
    await collector.broker.start()
    try:
        invoice = issued_invoice()
        await publish_event(publisher, settings, invoice, TOPIC_INVOICE, "acme")
        start = stripe_fake.server.app.state.stripe.requests

        async def many_tries_or_a_dead_letter() -> bool:
            tries = stripe_fake.server.app.state.stripe.requests - start
            return bool(tries >= 12 or collector.dead)

        await eventually(many_tries_or_a_dead_letter, what="Stripe to be retried", seconds=60)
        assert collector.dead == []
        async with httpx.AsyncClient(timeout=10) as http:
            health = await http.get(f"http://127.0.0.1:{port}/healthz")
        assert health.status_code == 200
        stripe_fake.switches(fail_requests=0)  # Stripe is back
        await eventually(lambda: collector.payments, what="the payment", seconds=120)
        await eventually(lambda: nothing_left(settings, mongo_db),
                         what="every record consumed and the outbox drained", seconds=120)
    finally:
        await publisher.stop()
        await collector.broker.stop()
        stop.set()
        await asyncio.wait_for(worker, timeout=60)
    [paid] = collector.payments
    assert paid["invoice_id"] == invoice.invoice_id and paid["payment_method"] == "card visa 4242"
    assert collector.dead == []
    assert len(stripe_fake.intents()) == 1
