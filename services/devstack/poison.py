"""Poison messages: messages a worker cannot process and must dead-letter, never retry.

`poison_messages()` lists at least one for every topic a worker consumes (each service's
`CONSUMES`), of several kinds: bytes that are not JSON (text and binary), JSON that fails the
contract its `event-type` header names, an `event-type` no contract has, a valid command without
its signature, a payment for an invoice that does not exist, and a usage event with a negative
quantity. Each carries the dead-letter `reason` the consumers give it (docs/operations.md,
"BillingDeadLettersArriving"); a topic read by two workers (`billing.invoice.v1`: payments and
the notifier) gets one dead letter from each, with the same reason.

The rule they test (docs/design.md#reliability): a poison message is dead-lettered with its
reason and acknowledged, so the messages after it on its partition are processed.
`publish_poison` sends them, keyed by one tenant, so a test can publish a valid message with the
same key after them and see it processed.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from contracts import (
    TOPIC_INVOICE,
    TOPIC_PAYMENT,
    TOPIC_STRIPE_EVENTS,
    TOPIC_TENANT,
    TOPIC_TENANT_CONFIG,
    TOPIC_USAGE,
    TOPIC_USAGE_ALERTS,
)
from services.common.codec import headers_for
from services.common.settings import CommonSettings

#: The tenant (message key) every poison message is published under.
POISON_TENANT = "tenant-poison"


@dataclass(frozen=True)
class Poison:
    """One message to publish as it is: `topic` is the contract topic name (without the
    prefix), `reason` the dead-letter reason every consumer that takes it gives it; `readers`
    how many consumer groups of the topic take its event type (None: every group of the topic;
    the others skip a type they do not handle)."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    reason: str
    readers: int | None = None


def _json(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _usage(tenant: str, quantity: str) -> bytes:
    return _json({
        "specversion": "1.0", "id": f"poison-{quantity}", "source": "poison",
        "type": "billing.usage", "subject": tenant, "time": "2013-08-01T00:00:00Z",
        "data": {"meter": "cpu_hours", "quantity": quantity, "service": "web"},
    })  # fmt: skip


def _unsigned_config(tenant: str) -> bytes:
    return _json({
        "tenant_id": tenant, "tenant_name": "Poison", "timezone": "UTC",
        "actor": {"user_id": "nobody", "role": "super"}, "effective_from": "2013-08-01",
        "settings": {
            "flat_rate_amount": 1000, "currency": "USD", "billing_frequency": "monthly",
            "billing_email": "billing@poison.example", "auto_generate_invoices": True,
            "billing_day_of_month": 1, "payment_due_days": 14, "email_notifications": True,
        },
        "price_plan": {"charges": []},
    })  # fmt: skip


def _payment_for_nothing(tenant: str) -> bytes:
    return _json({
        "invoice_id": "no-such-invoice", "invoice_number": "INV-1999-0001", "tenant_id": tenant,
        "amount": 1000, "currency": "USD", "payment_reference": "pi_poison",
        "payment_method": "card visa 4242", "paid_at": "2013-08-01T00:00:00Z",
    })  # fmt: skip


def poison_messages(tenant: str = POISON_TENANT) -> list[Poison]:
    """Every poison message, keyed by `tenant`; at least one per consumed topic."""
    key = tenant.encode()
    not_json = b"this is not JSON {"
    return [
        Poison(TOPIC_USAGE, key, not_json, headers_for("UsageRecorded"), "invalid_json"),
        Poison(TOPIC_USAGE, key, _usage(tenant, "-1"), headers_for("UsageRecorded"),
               "negative_quantity"),
        Poison(TOPIC_TENANT_CONFIG, key, not_json, headers_for("BillingConfigSubmitted"),
               "invalid_json"),
        Poison(TOPIC_TENANT_CONFIG, key, _unsigned_config(tenant),
               headers_for("BillingConfigSubmitted"), "forbidden"),
        Poison(TOPIC_PAYMENT, key, _json({"invoice_id": "x"}), headers_for("PaymentRefunded"),
               "validation_error"),
        Poison(TOPIC_PAYMENT, key, _payment_for_nothing(tenant), headers_for("PaymentSucceeded"),
               "unknown_invoice"),
        Poison(TOPIC_INVOICE, key, _json({"invoice_id": "x", "tenant_id": tenant}),
               headers_for("InvoiceIssued"), "validation_error"),
        Poison(TOPIC_INVOICE, key, _json({"invoice_id": "x"}), headers_for("InvoiceVoided"),
               "unknown_event_type"),
        Poison(TOPIC_INVOICE, key, not_json, headers_for("InvoiceIssued"), "invalid_json"),
        Poison(TOPIC_STRIPE_EVENTS, key, b"\x00\xff\xfe binary, not JSON",
               headers_for("StripeEventReceived"), "invalid_json"),
        Poison(TOPIC_TENANT, key, _json({"tenant_id": tenant, "config_version": 0}),
               headers_for("BillingConfigApplied"), "validation_error", readers=1),
        Poison(TOPIC_TENANT, key, _json({"tenant_id": tenant, "version": 0}),
               headers_for("UsageLimitsChanged"), "validation_error", readers=1),
        Poison(TOPIC_USAGE_ALERTS, key, _json({"tenant_id": tenant, "meter": "computations"}),
               headers_for("UsageThresholdReached"), "validation_error"),
    ]


async def publish_poison(
    settings: CommonSettings, poison: Sequence[Poison] | None = None
) -> list[Poison]:
    """Publish `poison` (default: every `poison_messages()` entry) to its topics (prefixed per
    `settings`), in order, each acknowledged by the broker before the call returns; returns
    what was sent. Raises aiokafka's `KafkaError` when the broker does not take them."""
    poison = list(poison_messages() if poison is None else poison)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for p in poison:
            await producer.send_and_wait(
                settings.topic(p.topic), p.value, key=p.key, headers=p.headers
            )
    finally:
        await producer.stop()
    return poison
