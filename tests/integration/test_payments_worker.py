"""The payments worker and the webhook ingress wired through real Kafka, in this process:
an `InvoiceIssued` delivered three times is charged once; Stripe's webhooks (each delivered
twice) reach the worker through `billing.stripe-events.v1` without a second payment; bad input
is dead-lettered; the manual-payment command publishes `PaymentSucceeded`."""

import asyncio
import sys
import time
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
from services.common.worker import make_broker, publish_event
from services.devstack.ports import free_port
from services.payments import api
from services.payments.app import run_payments
from services.payments.handlers import STRIPE_CONSUMER
from services.payments.settings import PaymentsSettings
from services.payments.webhooks import WebhookIngress
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


async def until(check: Any, what: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


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
            if not any(e["type"] == "payment_intent.succeeded" for e in stripe_fake.events()):
                return False
            done = await mongo_db["processed_events"].count_documents(
                {"_id": {"$regex": f"^{STRIPE_CONSUMER}:"}})
            return bool(done == len(stripe_fake.events()))

        await until(all_webhooks_reconciled, "the webhooks to be reconciled")
        await until(lambda: _true(len(collector.payments) >= 1 and len(collector.dead) >= 1),
                    "the payment and the dead letter")

        # a manual payment for another tenant's invoice, through the real command line
        other = issued_invoice(number=2, tenant="globex")
        await publish_event(publisher, settings, other, TOPIC_INVOICE, "globex")

        async def other_known() -> bool:
            found = await mongo_db["payments_invoices"].count_documents({"_id": other.invoice_id})
            return bool(found == 1)

        await until(other_known, "the second invoice's projection")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "payments", "record", "--invoice",
            other.invoice_number, "--method", "ach", "--reference", "ACH-42",
            "--paid-on", "2013-08-09", cwd=ROOT, stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**subprocess_env, "BILLING_STRIPE_API_BASE": stripe_fake.base_url},
        )
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        await until(lambda: _true(len(collector.payments) >= 2), "the manual payment")
        await asyncio.sleep(1.0)  # anything else would have been published by now
    finally:
        await publisher.stop()
        await collector.broker.stop()
        await ingress.stop()
        stop.set()
        await asyncio.wait_for(worker, timeout=60)

    assert len([pi for pi in stripe_fake.intents()]) == 1
    card, manual = collector.payments
    assert card["invoice_id"] == invoice.invoice_id
    assert card["payment_method"] == "card visa 4242"
    assert card["paid_at"].startswith("2013-08-01")
    assert (manual["payment_method"], manual["payment_reference"]) == ("ach", "ACH-42")
    assert manual["paid_at"].startswith("2013-08-09")
    assert [(d["reason"], d["service"]) for d in collector.dead] == [("invalid_json", "payments")]
    assert datetime.fromisoformat(card["paid_at"]) == datetime(2013, 8, 1, tzinfo=UTC)


async def _true(value: bool) -> bool:
    return value


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

        await until(many_tries_or_a_dead_letter, "Stripe to be retried", limit=60)
        assert collector.dead == []
        async with httpx.AsyncClient(timeout=10) as http:
            health = await http.get(f"http://127.0.0.1:{port}/healthz")
        assert health.status_code == 200
        stripe_fake.switches(fail_requests=0)  # Stripe is back
        await until(lambda: _true(len(collector.payments) >= 1), "the payment")
    finally:
        await publisher.stop()
        await collector.broker.stop()
        stop.set()
        await asyncio.wait_for(worker, timeout=60)
    [paid] = collector.payments
    assert paid["invoice_id"] == invoice.invoice_id and paid["payment_method"] == "card visa 4242"
    assert collector.dead == []
    assert len(stripe_fake.intents()) == 1
