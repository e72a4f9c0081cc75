"""Payments domain: pure rules, no I/O (rules explained in docs/payments.md).

- Idempotency keys derive from the invoice and the attempt, so a redelivered `InvoiceIssued`
  replays Stripe's first answer instead of charging twice (Stripe keeps keys for 24 h:
  https://docs.stripe.com/api/idempotent_requests; past that the invoice's intents are
  looked up first, docs/payments.md "Outages").
- Output event ids are deterministic: one `PaymentSucceeded` id per invoice, one
  `PaymentFailed` id per (invoice, attempt); the outbox's unique `_id` refuses a second copy.
- An invoice never moves backwards: once `paid`, later Stripe events change nothing.
- Dunning: attempt n (n >= 1) failed -> retry at first failure + schedule[n-1] days; past the
  schedule's end the invoice stays `failed` with no next attempt. A tenant's Pay now click on
  an invoice whose schedule has started is recorded but does not count in it (n excludes
  those clicks), and a click charges the card at most once a minute
  (docs/payments.md "Paying from the portal").
- A charge and a manual payment exclude each other through one lease (`charging`), and a
  Stripe success for an invoice paid otherwise is a duplicate, recorded and reported
  (docs/payments.md "Charge lease", "Duplicate payments").
- Refunds count once per Stripe refund id (docs/payments.md "Refunds").
"""

import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from contracts import (
    InvoiceIssued,
    PaymentDuplicated,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
)
from contracts.invoices import InvoiceStatus

#: The statuses an invoice has in the payments service, the contract's `InvoiceStatus` values:
#: pending_payment: issued, not charged yet or nothing to charge with (no payment method on
#: file: it waits for a manual payment); failed: last attempt failed (maybe retried); paid:
#: settled. (`overdue` is the invoicer's: payments never sets it.)
PAYMENT_STATUSES = (InvoiceStatus.pending_payment, InvoiceStatus.failed, InvoiceStatus.paid)
_NAMESPACE = uuid.UUID("5b0f3a4e-2f7d-4c1e-9a57-0c1f5e2d7b11")
ZERO_AMOUNT_REFERENCE = "zero-amount"
#: `metadata.source` of a PaymentIntent made by a Checkout Session (the portal's Pay now)
CHECKOUT_SOURCE = "checkout"
#: `metadata.source` of a card-on-file charge a tenant started with Pay now
PAY_NOW_SOURCE = "pay_now"
MANUAL_METHODS = ("ach", "bank_transfer")
#: The least time between two card-on-file charges of one invoice started by Pay now
PAY_NOW_INTERVAL = timedelta(minutes=1)


def idempotency_key(invoice_id: str, attempt: int) -> str:
    """Stripe `Idempotency-Key` of charge `attempt` (1 = first) of an invoice."""
    return f"invoice-{invoice_id}-attempt-{attempt}"


def checkout_idempotency_key(invoice_id: str, click: str) -> str:
    """Stripe `Idempotency-Key` creating the Checkout Session of one Pay now `click` (a
    random id made once per click) of an invoice: the gateway's retries of a transient error
    replay the first session instead of opening another."""
    return f"checkout-{invoice_id}-{click}"


def customer_idempotency_key(tenant_id: str) -> str:
    """Stripe `Idempotency-Key` creating the tenant's customer (one customer per tenant)."""
    return f"customer-{tenant_id}"


def succeeded_event_id(invoice_id: str) -> str:
    """The only id a `PaymentSucceeded` for `invoice_id` can have."""
    return str(uuid.uuid5(_NAMESPACE, f"succeeded:{invoice_id}"))


def failed_event_id(invoice_id: str, attempt: int) -> str:
    """The id of the `PaymentFailed` of `attempt` of `invoice_id`."""
    return str(uuid.uuid5(_NAMESPACE, f"failed:{invoice_id}:{attempt}"))


def duplicated_event_id(invoice_id: str, intent_id: str) -> str:
    """The id of the `PaymentDuplicated` reporting PaymentIntent `intent_id` for an invoice."""
    return str(uuid.uuid5(_NAMESPACE, f"duplicated:{invoice_id}:{intent_id}"))


def refunded_event_id(refund_id: str) -> str:
    """The only id a `PaymentRefunded` for Stripe refund `refund_id` can have."""
    return str(uuid.uuid5(_NAMESPACE, f"refunded:{refund_id}"))


def manual_paid_at(paid_on: date, zone: str) -> datetime:
    """The instant a manual payment dated `paid_on` was made: midnight of that day in the
    tenant's IANA zone `zone`, so the day is the same wherever the tenant is
    (docs/payments.md "Manual payments")."""
    return datetime.combine(paid_on, time(0), ZoneInfo(zone))


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
    payment_method_id: str | None = None


@dataclass(frozen=True)
class Intent:
    """A PaymentIntent as re-read from Stripe: its status, what it means as a charge result,
    and what it says it pays (`metadata.invoice_id`, `metadata.attempt`), amount in minor
    units and upper-case ISO 4217 currency; `checkout` when a Checkout Session made it,
    `by_tenant` when it is a card-on-file charge of Pay now."""

    status: str
    result: ChargeResult
    invoice_id: str | None
    amount: int
    currency: str
    attempt: int | None = None
    checkout: bool = False
    by_tenant: bool = False


@dataclass(frozen=True)
class Refund:
    """A Stripe refund: id, amount (minor units), currency, PaymentIntent, status, reason."""

    refund_id: str
    amount: int
    currency: str
    payment_intent: str
    status: str
    created: datetime
    reason: str | None = None


@dataclass(frozen=True)
class InvoiceRecord:
    """The payments service's view of an issued invoice (collection `payments_invoices`)."""

    invoice_id: str
    invoice_number: str
    tenant_id: str
    amount: int
    currency: str
    issued_at: datetime
    status: InvoiceStatus = InvoiceStatus.pending_payment
    attempts: int = 0
    first_failed_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    payment_reference: str | None = None
    payment_method: str | None = None
    reported_intents: tuple[str, ...] = field(default=())
    refunded_amount: int = 0
    timezone: str = "UTC"
    #: the attempt whose Stripe call is in flight, and until when (wall clock) that lease holds
    charging: int | None = None
    charging_until: datetime | None = None
    #: PaymentIntents that succeeded after the invoice was already paid
    duplicate_intents: tuple[str, ...] = field(default=())
    #: every refund recorded: (refund id, amount, PaymentIntent)
    refunds: tuple[tuple[str, int, str], ...] = field(default=())
    #: failed Pay now attempts made after the dunning schedule started (not counted in it)
    tenant_attempts: int = 0
    #: when (wall clock) the latest card-on-file charge of Pay now started
    charged_at: datetime | None = None

    @classmethod
    def from_issued(cls, event: InvoiceIssued) -> "InvoiceRecord":
        """The record of a newly issued invoice (`pending_payment`)."""
        return cls(event.invoice_id, event.invoice_number, event.tenant_id, event.amount,
                   event.currency, event.occurred_at, timezone=event.timezone)

    def leased(self, now: datetime) -> bool:
        """True while a charge of this invoice is in flight (its lease has not run out)."""
        return self.charging is not None and (self.charging_until is None
                                              or self.charging_until > now)

    def charged_recently(self, now: datetime) -> bool:
        """True when a Pay now card-on-file charge started less than `PAY_NOW_INTERVAL`
        before `now` (wall clock): Pay now then charges nothing. (Dunning retries run on the
        billing clock, which may be simulated, so they do not count here; the charge lease
        keeps a click off while one is in flight.)"""
        return self.charged_at is not None and now - self.charged_at < PAY_NOW_INTERVAL

    def knows_intent(self, intent_id: str | None) -> bool:
        """True when `intent_id` was already reported or recorded for this invoice."""
        return intent_id is not None and (
            intent_id == self.payment_reference or intent_id in self.reported_intents
            or intent_id in self.duplicate_intents)


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
    if record.status == InvoiceStatus.paid:
        raise ValueError(f"invoice {record.invoice_number} is already paid")
    ref = reference or (result.payment_intent_id if result else None) or "unknown"
    how = method or (result.payment_method if result else None) or "card"
    intents = record.reported_intents + ((ref,) if result else ())
    paid = replace(record, status=InvoiceStatus.paid, attempts=max(record.attempts, attempt),
                   payment_reference=ref, payment_method=how, next_attempt_at=None,
                   last_attempt_at=at if result else record.last_attempt_at,
                   reported_intents=intents, charging=None, charging_until=None)
    event = PaymentSucceeded(
        event_id=succeeded_event_id(record.invoice_id), occurred_at=at,
        invoice_id=record.invoice_id, invoice_number=record.invoice_number,
        tenant_id=record.tenant_id, amount=record.amount, currency=record.currency,
        payment_reference=ref, payment_method=how, paid_at=at, attempt=attempt,
    )
    return paid, event


def fail(
    record: InvoiceRecord, result: ChargeResult, attempt: int, at: datetime,
    schedule_days: tuple[int, ...], by_tenant: bool = False,
) -> tuple[InvoiceRecord, PaymentFailed]:
    """The invoice after charge `attempt` failed at `at`, and the event saying so.

    `by_tenant` (a Pay now click): once the schedule has started (a first failure is
    recorded) the click is counted in `tenant_attempts` and the next retry and the
    schedule's end stay as they were; else the failure is the schedule's next step, its
    position being `attempt` less the tenant's attempts."""
    first = record.first_failed_at or at
    clicks = record.tenant_attempts
    if by_tenant and record.first_failed_at is not None:
        retry_at, clicks = record.next_attempt_at, clicks + 1
    else:
        retry_at = next_attempt_at(first, max(attempt - clicks, 1), schedule_days)
    intents = record.reported_intents + (
        (result.payment_intent_id,) if result.payment_intent_id else ())
    failed = replace(record, status=InvoiceStatus.failed, attempts=max(record.attempts, attempt),
                     first_failed_at=first, next_attempt_at=retry_at, last_attempt_at=at,
                     reported_intents=intents, charging=None, charging_until=None,
                     tenant_attempts=clicks)
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


def duplicate(record: InvoiceRecord, result: ChargeResult, at: datetime
              ) -> tuple[InvoiceRecord, PaymentDuplicated]:
    """Record that Stripe charge `result` succeeded for an invoice already paid by something
    else, and the event asking an operator to refund it. Raises `ValueError` when the invoice
    is not paid or the intent is already known."""
    intent_id = result.payment_intent_id
    if record.status != InvoiceStatus.paid or intent_id is None or record.knows_intent(intent_id):
        raise ValueError(f"{intent_id} is not a duplicate payment of {record.invoice_number}")
    new = replace(record, duplicate_intents=(*record.duplicate_intents, intent_id))
    event = PaymentDuplicated(
        event_id=duplicated_event_id(record.invoice_id, intent_id), occurred_at=at,
        invoice_id=record.invoice_id, invoice_number=record.invoice_number,
        tenant_id=record.tenant_id, amount=record.amount, currency=record.currency,
        payment_reference=intent_id, settled_by=record.payment_reference, received_at=at,
    )
    return new, event


def refund(record: InvoiceRecord, rf: Refund) -> tuple[InvoiceRecord, PaymentRefunded | None]:
    """Record Stripe refund `rf` once (by refund id). A refund of the invoice's own payment
    raises `refunded_amount` and gives a `PaymentRefunded`; one of a duplicate payment is only
    recorded (the invoice was paid once). Raises `ValueError` for a refund already recorded."""
    if any(known == rf.refund_id for known, _, _ in record.refunds):
        raise ValueError(f"refund {rf.refund_id} is already recorded")
    refunds = (*record.refunds, (rf.refund_id, rf.amount, rf.payment_intent))
    if rf.payment_intent != record.payment_reference:
        return replace(record, refunds=refunds), None
    total = record.refunded_amount + rf.amount
    new = replace(record, refunds=refunds, refunded_amount=total)
    event = PaymentRefunded(
        event_id=refunded_event_id(rf.refund_id), occurred_at=rf.created,
        invoice_id=record.invoice_id, invoice_number=record.invoice_number,
        tenant_id=record.tenant_id, refund_id=rf.refund_id, amount=rf.amount,
        currency=record.currency, payment_reference=rf.payment_intent, refunded_total=total,
        refunded_at=rf.created, reason=rf.reason,
    )
    return new, event


def mismatch(record: InvoiceRecord, intent: Intent) -> str | None:
    """Why a re-read PaymentIntent cannot be applied to `record` (`invoice`, `amount`,
    `currency`), or None when its metadata invoice id, amount and currency all match."""
    if intent.invoice_id != record.invoice_id:
        return "invoice"
    if intent.amount != record.amount:
        return "amount"
    if intent.currency.upper() != record.currency.upper():
        return "currency"
    return None


WebhookDecision = Literal["succeed", "fail", "ignore", "duplicate"]


def reconcile(record: InvoiceRecord, intent: ChargeResult, intent_status: str,
              from_checkout: bool = False) -> WebhookDecision:
    """What a Stripe event about PaymentIntent `intent` (re-read from Stripe, so its status is
    current whatever order events arrive in) means for the invoice: a paid invoice never moves
    (a success by another, unknown intent is a duplicate payment); an outcome already reported
    for this intent is not reported again; a card declined on a Checkout page (`from_checkout`)
    changes nothing (no attempt of ours failed; the payer may try another card)."""
    if record.status == InvoiceStatus.paid:
        if intent_status == "succeeded" and not record.knows_intent(intent.payment_intent_id):
            return "duplicate"
        return "ignore"
    if intent_status == "succeeded":
        return "succeed"
    if intent_status in ("requires_payment_method", "canceled"):
        if from_checkout or intent.payment_intent_id in record.reported_intents:
            return "ignore"
        return "fail"
    return "ignore"
