"""Payments domain: pure rules, no I/O.

- Idempotency keys derive from the invoice and the attempt (../shared/DESIGN.md, Payments), so
  a redelivered `InvoiceIssued` replays Stripe's first answer instead of charging twice.
- Output event ids are deterministic: one `PaymentSucceeded` id per invoice, one
  `PaymentFailed` id per (invoice, attempt); the outbox's unique `_id` refuses a second copy.
- An invoice never moves backwards: once `paid`, later Stripe events change nothing.
- Dunning: attempt n (n >= 1) failed -> retry at first failure + schedule[n-1] days; past the
  schedule's end the invoice stays `failed` with no next attempt.
"""

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from contracts import InvoiceIssued, PaymentFailed, PaymentSucceeded

#: paid: settled; failed: last attempt failed (maybe retried); awaiting_payment: nothing to
#: charge with (no payment method on file), waits for a manual payment.
InvoicePaymentStatus = Literal["awaiting_payment", "failed", "paid"]
_NAMESPACE = uuid.UUID("5b0f3a4e-2f7d-4c1e-9a57-0c1f5e2d7b11")
ZERO_AMOUNT_REFERENCE = "zero-amount"
MANUAL_METHODS = ("ach", "bank_transfer")


def idempotency_key(invoice_id: str, attempt: int) -> str:
    """Stripe `Idempotency-Key` of charge `attempt` (1 = first) of an invoice."""
    return f"invoice-{invoice_id}-attempt-{attempt}"


def customer_idempotency_key(tenant_id: str) -> str:
    """Stripe `Idempotency-Key` creating the tenant's customer (one customer per tenant)."""
    return f"customer-{tenant_id}"


def succeeded_event_id(invoice_id: str) -> str:
    """The only id a `PaymentSucceeded` for `invoice_id` can have."""
    return str(uuid.uuid5(_NAMESPACE, f"succeeded:{invoice_id}"))


def failed_event_id(invoice_id: str, attempt: int) -> str:
    """The id of the `PaymentFailed` of `attempt` of `invoice_id`."""
    return str(uuid.uuid5(_NAMESPACE, f"failed:{invoice_id}:{attempt}"))


def describe_card(brand: str | None, last4: str | None) -> str:
    """`card visa 4242`, the `payment_method` text of a card payment."""
    return " ".join(p for p in ("card", brand or "unknown", last4 or "") if p)


@dataclass(frozen=True)
class ChargeResult:
    """What one charge attempt ended with (from the API answer or a re-read PaymentIntent)."""

    succeeded: bool
    payment_intent_id: str | None
    payment_method: str | None = None
    failure_code: str | None = None
    decline_code: str | None = None
    failure_message: str = ""


@dataclass(frozen=True)
class InvoiceRecord:
    """The payments service's view of an issued invoice (collection `payments_invoices`)."""

    invoice_id: str
    invoice_number: str
    tenant_id: str
    amount: int
    currency: str
    issued_at: datetime
    status: InvoicePaymentStatus = "awaiting_payment"
    attempts: int = 0
    first_failed_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    payment_reference: str | None = None
    payment_method: str | None = None
    reported_intents: tuple[str, ...] = field(default=())
    refunded_amount: int = 0

    @classmethod
    def from_issued(cls, event: InvoiceIssued) -> "InvoiceRecord":
        return cls(event.invoice_id, event.invoice_number, event.tenant_id, event.amount,
                   event.currency, event.occurred_at)


def next_attempt_at(
    first_failed_at: datetime, failed_attempt: int, schedule_days: tuple[int, ...]
) -> datetime | None:
    """When to retry after `failed_attempt` (1-based) failed; None once the schedule is over."""
    if failed_attempt - 1 >= len(schedule_days):
        return None
    return first_failed_at + timedelta(days=schedule_days[failed_attempt - 1])


def settle(
    record: InvoiceRecord, result: ChargeResult | None, attempt: int, at: datetime,
    *, reference: str | None = None, method: str | None = None,
) -> tuple[InvoiceRecord, PaymentSucceeded]:
    """The invoice paid at `at` by `result` (a Stripe charge) or by `reference`/`method`
    (zero amount, manual payment); raises `ValueError` if it already was."""
    if record.status == "paid":
        raise ValueError(f"invoice {record.invoice_number} is already paid")
    ref = reference or (result.payment_intent_id if result else None) or "unknown"
    how = method or (result.payment_method if result else None) or "card"
    intents = record.reported_intents + ((ref,) if result else ())
    paid = replace(record, status="paid", attempts=max(record.attempts, attempt),
                   payment_reference=ref, payment_method=how, next_attempt_at=None,
                   last_attempt_at=at if result else record.last_attempt_at,
                   reported_intents=intents)
    event = PaymentSucceeded(
        event_id=succeeded_event_id(record.invoice_id), occurred_at=at,
        invoice_id=record.invoice_id, invoice_number=record.invoice_number,
        tenant_id=record.tenant_id, amount=record.amount, currency=record.currency,
        payment_reference=ref, payment_method=how, paid_at=at, attempt=attempt,
    )
    return paid, event


def fail(
    record: InvoiceRecord, result: ChargeResult, attempt: int, at: datetime,
    schedule_days: tuple[int, ...],
) -> tuple[InvoiceRecord, PaymentFailed]:
    """The invoice after charge `attempt` failed at `at`, and the event saying so."""
    first = record.first_failed_at or at
    retry_at = next_attempt_at(first, attempt, schedule_days)
    intents = record.reported_intents + (
        (result.payment_intent_id,) if result.payment_intent_id else ())
    failed = replace(record, status="failed", attempts=max(record.attempts, attempt),
                     first_failed_at=first, next_attempt_at=retry_at, last_attempt_at=at,
                     reported_intents=intents)
    event = PaymentFailed(
        event_id=failed_event_id(record.invoice_id, attempt), occurred_at=at,
        invoice_id=record.invoice_id, invoice_number=record.invoice_number,
        tenant_id=record.tenant_id, amount=record.amount, currency=record.currency,
        payment_reference=result.payment_intent_id, failure_code=result.failure_code,
        decline_code=result.decline_code,
        failure_message=result.failure_message or "payment failed", attempt=attempt,
        next_attempt_at=retry_at,
    )
    return failed, event


WebhookDecision = Literal["succeed", "fail", "ignore"]


def reconcile(record: InvoiceRecord, intent: ChargeResult, intent_status: str) -> WebhookDecision:
    """What a Stripe event about PaymentIntent `intent` (re-read from Stripe, so its status is
    current whatever order events arrive in) means for the invoice: a paid invoice never moves;
    an outcome already reported for this intent is not reported again."""
    if record.status == "paid":
        return "ignore"
    if intent_status == "succeeded":
        return "succeed"
    if intent_status in ("requires_payment_method", "canceled"):
        if intent.payment_intent_id in record.reported_intents:
            return "ignore"
        return "fail"
    return "ignore"
