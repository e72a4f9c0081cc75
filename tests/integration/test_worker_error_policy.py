"""Each FastStream worker on the real broker follows the one error policy: a bug in a handler
dead-letters its message `internal_error` and the next message of the partition is processed;
an outage is retried in place (no dead letter, the health endpoint answering) until it passes.
The handlers are replaced in-process; everything else (broker, groups, offsets) is real."""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from contracts import TOPIC_DEAD_LETTER, TOPIC_INVOICE, TOPIC_PAYMENT, PaymentSucceeded
from contracts.base import Contract
from services.common.errors import DependencyUnavailable
from services.common.kafka import ensure_topics
from services.common.lag import committed_offsets, pending_partitions
from services.common.settings import CommonSettings
from services.common.worker import make_broker, publish_event
from services.devstack.ports import free_port
from services.invoicer import app as invoicer_app
from services.invoicer.settings import InvoicerSettings
from services.notifier import app as notifier_app
from services.notifier.settings import NotifierSettings
from services.payments import app as payments_app
from services.payments.settings import PaymentsSettings
from tests.support.polling import eventually
from tests.support.stripe_fake import issued_invoice

pytestmark = pytest.mark.integration


def paid(n: int) -> PaymentSucceeded:
    return PaymentSucceeded(
        invoice_id=f"inv-{n}", invoice_number=f"INV-{n}", tenant_id="acme", amount=4900,
        currency="USD", payment_reference=f"pi_{n}", payment_method="card visa 4242",
        paid_at=datetime(2013, 8, 1, tzinfo=UTC),
    )


@asynccontextmanager
async def running(
    serve: Callable[[asyncio.Event], Coroutine[Any, Any, None]], settings: CommonSettings
) -> AsyncIterator[Callable[[Contract, str], Awaitable[None]]]:
    """The worker `serve(stop)` running, and a function publishing an event to a topic."""
    await ensure_topics(settings)
    stop = asyncio.Event()
    worker = asyncio.create_task(serve(stop))
    publisher = make_broker(settings, name="test")
    await publisher.start()

    async def publish(event: Contract, topic: str) -> None:
        await publish_event(publisher, settings, event, topic, "acme")

    try:
        yield publish
    finally:
        await publisher.stop()
        stop.set()
        await asyncio.wait_for(worker, timeout=60)


async def dead_letters(settings: CommonSettings) -> list[dict[str, Any]]:
    """Every record on the dead-letter topic so far."""
    consumer = AIOKafkaConsumer(settings.topic(TOPIC_DEAD_LETTER), auto_offset_reset="earliest",
                                bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=1000)
        return [json.loads(m.value) for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()


async def caught_up(settings: CommonSettings, group: str, topic: str) -> bool:
    """Positive evidence the worker is done: its group committed past every record."""
    committed = await committed_offsets(settings, settings.group(group), [settings.topic(topic)])
    return bool(committed) and not await pending_partitions(settings, committed)


async def test_an_invoicer_handler_bug_is_dead_lettered_and_the_partition_moves_on(
    billing_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = InvoicerSettings(invoicer_cycle_interval_seconds=0, retry_base_seconds=0.05)
    applied: list[str] = []

    async def apply_payment(store: Any, event: PaymentSucceeded) -> None:
        if event.invoice_id == "inv-1":
            raise KeyError("invoice_number")
        applied.append(event.invoice_id)

    monkeypatch.setattr(invoicer_app, "apply_payment", apply_payment)
    async with running(lambda stop: invoicer_app.serve(stop, settings), settings) as publish:
        await publish(paid(1), TOPIC_PAYMENT)
        await publish(paid(2), TOPIC_PAYMENT)
        await eventually(lambda: applied, what="the second payment applied", seconds=60)
        await eventually(lambda: caught_up(settings, "invoicer", TOPIC_PAYMENT),
                         what="the invoicer past both messages", seconds=60)
    assert applied == ["inv-2"]
    [letter] = await dead_letters(settings)
    assert (letter["service"], letter["reason"]) == ("invoicer", "internal_error")
    assert letter["detail"].startswith("KeyError: 'invoice_number' at ")


async def test_payments_retries_an_outage_in_place_while_its_health_endpoint_answers(
    billing_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    settings = PaymentsSettings(stripe_webhook_secret="whsec_policy", clock_mode="event",
                                payments_dunning_interval_seconds=0, stripe_webhooks_port=0,
                                stripe_retry_base_seconds=0.02, payments_retry_cap_seconds=0.2,
                                ops_port=port)
    tries: list[str] = []
    outage_over = asyncio.Event()

    async def handle_invoice_issued(event: Any, deps: Any) -> str:
        tries.append(event.invoice_id)
        if not outage_over.is_set():
            raise DependencyUnavailable("MongoDB")
        return "charged"

    monkeypatch.setitem(payments_app.ROUTES, TOPIC_INVOICE,
                        (payments_app.ROUTES[TOPIC_INVOICE][0], handle_invoice_issued))
    serve = lambda stop: payments_app.run_payments(settings, stop)  # noqa: E731
    async with running(serve, settings) as publish:
        await publish(issued_invoice(1), TOPIC_INVOICE)
        await eventually(lambda: len(tries) >= 3, what="three tries", seconds=60)
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        assert not await caught_up(settings, "payments", TOPIC_INVOICE)
        outage_over.set()
        await eventually(lambda: caught_up(settings, "payments", TOPIC_INVOICE),
                         what="the invoice handled and committed", seconds=60)
        handled = len(tries)
    assert handled >= 4 and set(tries) == {"inv-acme-1"}
    assert await dead_letters(settings) == []


async def test_a_notifier_handler_bug_is_dead_lettered_and_the_next_event_notified(
    billing_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = NotifierSettings(retry_base_seconds=0.05)
    notified: list[str] = []

    async def notify(event: Any, deps: Any, source: Any) -> str:
        if event.invoice_id == "inv-acme-1":
            raise ValueError("template broken")
        assert source.topic == settings.topic(TOPIC_INVOICE)
        notified.append(event.invoice_id)
        return "sent"

    monkeypatch.setattr(notifier_app, "notify", notify)
    serve = lambda stop: notifier_app.run_notifier(stop, settings)  # noqa: E731
    async with running(serve, settings) as publish:
        await publish(issued_invoice(1), TOPIC_INVOICE)
        await publish(issued_invoice(2), TOPIC_INVOICE)
        await eventually(lambda: notified, what="the second invoice notified", seconds=60)
        await eventually(lambda: caught_up(settings, "notifier", TOPIC_INVOICE),
                         what="the notifier past both messages", seconds=60)
    assert notified == ["inv-acme-2"]
    [letter] = await dead_letters(settings)
    assert (letter["service"], letter["reason"]) == ("notifier", "internal_error")
    assert letter["detail"].startswith("ValueError: template broken at ")


async def test_a_stop_during_an_outage_ends_promptly_and_leaves_the_offset_uncommitted(
    billing_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = PaymentsSettings(stripe_webhook_secret="whsec_policy", clock_mode="event",
                                payments_dunning_interval_seconds=0, stripe_webhooks_port=0,
                                stripe_retry_base_seconds=30, payments_retry_cap_seconds=60)
    tries: list[str] = []

    async def handle_invoice_issued(event: Any, deps: Any) -> str:
        tries.append(event.invoice_id)
        raise DependencyUnavailable("Stripe")

    monkeypatch.setitem(payments_app.ROUTES, TOPIC_INVOICE,
                        (payments_app.ROUTES[TOPIC_INVOICE][0], handle_invoice_issued))
    await ensure_topics(settings)
    stop = asyncio.Event()
    worker = asyncio.create_task(payments_app.run_payments(settings, stop))
    publisher = make_broker(settings, name="test")
    await publisher.start()
    try:
        await publish_event(publisher, settings, issued_invoice(1), TOPIC_INVOICE, "acme")
        await eventually(lambda: tries, what="the first try", seconds=60)
    finally:
        await publisher.stop()
        stop.set()  # SIGTERM while the 30 s back-off runs
        await asyncio.wait_for(worker, timeout=25)
    committed = await committed_offsets(settings, settings.group("payments"),
                                        [settings.topic(TOPIC_INVOICE)])
    assert sum(committed.values()) == 0, "the message is redelivered after the restart"
    assert set(tries) == {"inv-acme-1"}
    assert await dead_letters(settings) == []
