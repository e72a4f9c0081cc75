"""The invoicer's subscribers on FastStream's in-memory `TestKafkaBroker`: they use the common
runtime, so a bug in a handler dead-letters its message (`internal_error`) instead of blocking
the partition, and an outage is retried in place until it passes."""

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from contracts import TOPIC_DEAD_LETTER, TOPIC_PAYMENT, PaymentSucceeded
from services.common.errors import DependencyUnavailable
from services.common.worker import publish_event
from services.invoicer import app
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.settings import InvoicerSettings

pytestmark = pytest.mark.unit
SETTINGS = InvoicerSettings(topic_prefix="inv.", command_signing_key="k" * 32,
                            retry_base_seconds=0.001, retry_cap_seconds=0.005)


def paid(n: int) -> PaymentSucceeded:
    return PaymentSucceeded(
        invoice_id=f"inv-{n}", invoice_number=f"INV-{n}", tenant_id="acme", amount=4900,
        currency="USD", payment_reference=f"pi_{n}", payment_method="card visa 4242",
        paid_at=datetime(2013, 8, 1, tzinfo=UTC),
    )


def with_dead_letters(broker: KafkaBroker) -> list[dict[str, Any]]:
    dead: list[dict[str, Any]] = []

    @broker.subscriber(SETTINGS.topic(TOPIC_DEAD_LETTER))  # type: ignore[untyped-decorator]
    async def on_dead(body: dict[str, Any]) -> None:
        dead.append(body)

    return dead


async def test_a_handler_bug_is_dead_lettered_and_the_next_payment_is_applied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    applied: list[str] = []

    async def apply_payment(store: Any, event: PaymentSucceeded) -> None:
        if event.invoice_id == "inv-1":
            raise KeyError("invoice_number")
        applied.append(event.invoice_id)

    monkeypatch.setattr(app, "apply_payment", apply_payment)
    broker = app.build(SETTINGS, cast(InvoicerStore, None), asyncio.Event())
    dead = with_dead_letters(broker)
    async with TestKafkaBroker(broker) as test_broker:
        await publish_event(test_broker, SETTINGS, paid(1), TOPIC_PAYMENT, "acme")
        await publish_event(test_broker, SETTINGS, paid(2), TOPIC_PAYMENT, "acme")
    assert applied == ["inv-2"]
    assert [(d["service"], d["reason"]) for d in dead] == [("invoicer", "internal_error")]
    assert dead[0]["detail"].startswith("KeyError: 'invoice_number' at ")


async def test_a_database_outage_is_retried_until_the_payment_is_applied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tries: list[str] = []

    async def apply_payment(store: Any, event: PaymentSucceeded) -> None:
        tries.append(event.invoice_id)
        if len(tries) <= 3:
            raise DependencyUnavailable("MongoDB")

    monkeypatch.setattr(app, "apply_payment", apply_payment)
    broker = app.build(SETTINGS, cast(InvoicerStore, None), asyncio.Event())
    dead = with_dead_letters(broker)
    async with TestKafkaBroker(broker) as test_broker:
        await publish_event(test_broker, SETTINGS, paid(1), TOPIC_PAYMENT, "acme")
    assert tries == ["inv-1"] * 4
    assert dead == []
