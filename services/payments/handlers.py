"""Use cases of the payments service, one function each.

Each consumes one input and makes its effects durable through `PaymentsStore.commit` (tracking
record + invoice state + outbox in one transaction). Charges are safe to repeat: the Stripe
idempotency key is per (invoice, attempt), so a redelivery replays Stripe's first answer and
the commit then finds the event already processed.
"""

import logging
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from typing import Any

from contracts import TOPIC_PAYMENT, InvoiceIssued, StripeEventReceived
from contracts.base import Event, utc_now
from services.common.clock import effect_time
from services.common.errors import PermanentError
from services.payments import domain
from services.payments.adapters.metrics import ATTEMPTS, OUTCOMES, STRIPE_EVENTS
from services.payments.adapters.store import PaymentsStore
from services.payments.adapters.stripe_gateway import PaymentGateway
from services.payments.domain import ChargeResult, InvoiceRecord
from services.payments.settings import PaymentsSettings

log = logging.getLogger(__name__)
INVOICE_CONSUMER = "payments.invoices"
STRIPE_CONSUMER = "payments.stripe-events"
INTENT_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed")
REFUND_EVENTS = ("charge.refunded", "refund.created", "refund.updated")


@dataclass
class Deps:
    """What the handlers need, built once at start-up."""

    settings: PaymentsSettings
    store: PaymentsStore
    gateway: PaymentGateway


def _out(event: Event, tenant_id: str) -> list[tuple[Event, str, str]]:
    return [(event, TOPIC_PAYMENT, tenant_id)]


async def _charge(deps: Deps, record: InvoiceRecord, customer: dict[str, Any],
                  attempt: int) -> ChargeResult:
    ATTEMPTS.labels("initial" if attempt == 1 else "retry").inc()
    return await deps.gateway.charge(
        customer_id=customer["customer_id"], payment_method_id=customer["payment_method_id"],
        amount=record.amount, currency=record.currency,
        idempotency_key=domain.idempotency_key(record.invoice_id, attempt),
        metadata={"tenant_id": record.tenant_id, "invoice_id": record.invoice_id,
                  "invoice_number": record.invoice_number, "attempt": str(attempt)},
    )


async def _commit_result(deps: Deps, record: InvoiceRecord, result: ChargeResult, attempt: int,
                         at: datetime, **tracking: Any) -> str:
    event: Event
    if result.succeeded:
        new, event = domain.settle(record, result, attempt, at)
        outcome = "succeeded"
    else:
        new, event = domain.fail(record, result, attempt, at,
                                 deps.settings.payments_dunning_schedule_days)
        outcome = "failed"
    if await deps.store.commit(record=new, outgoing=_out(event, record.tenant_id), **tracking):
        OUTCOMES.labels(outcome).inc()
        return outcome
    return "duplicate"


async def handle_invoice_issued(event: InvoiceIssued, deps: Deps) -> str:
    """Charge a newly issued invoice once; returns what happened.

    Zero amount: `PaymentSucceeded` without a charge (`payment_method` "none"). No payment
    method on file: recorded as awaiting a manual payment, nothing published. Otherwise a
    PaymentIntent (attempt 1) and `PaymentSucceeded` or `PaymentFailed`, dated by the billing
    clock (`effect_time`). Idempotent per event id and per invoice id.
    """
    tracking: dict[str, Any] = {"consumer": INVOICE_CONSUMER, "event_id": event.event_id}
    if await deps.store.processed(INVOICE_CONSUMER, event.event_id):
        return "duplicate"
    if await deps.store.invoice(event.invoice_id) is not None:  # re-issued copy of the invoice
        await deps.store.commit(**tracking)
        return "duplicate"
    record = InvoiceRecord.from_issued(event)
    at = effect_time(deps.settings.clock_mode, event.occurred_at)
    if record.amount == 0:
        paid, out = domain.settle(record, None, 0, at, reference=domain.ZERO_AMOUNT_REFERENCE,
                                  method="none")
        if await deps.store.commit(record=paid, outgoing=_out(out, record.tenant_id), **tracking):
            OUTCOMES.labels("zero_amount").inc()
            return "zero_amount"
        return "duplicate"
    customer = await deps.store.customer(record.tenant_id)
    if not customer or not customer.get("payment_method_id"):
        await deps.store.commit(record=record, **tracking)
        return "awaiting_payment"
    result = await _charge(deps, record, customer, 1)
    return await _commit_result(deps, record, result, 1, at, **tracking)


async def run_due_retries(as_of: datetime, deps: Deps) -> int:
    """Retry every failed invoice whose next attempt is due at `as_of` (dunning); returns the
    number of attempts made. Each attempt has its own idempotency key; its outcome is dated
    at `as_of` in event clock mode. An invoice changed meanwhile is left to the other run."""
    made = 0
    for record in await deps.store.due_retries(as_of):
        customer = await deps.store.customer(record.tenant_id)
        if not customer or not customer.get("payment_method_id"):
            continue
        attempt = record.attempts + 1
        at = effect_time(deps.settings.clock_mode, as_of)
        if not await deps.store.mark_attempt(record.invoice_id, record.attempts, at):
            continue
        result = await _charge(deps, record, customer, attempt)
        await _commit_result(deps, record, result, attempt, at, expect_attempts=record.attempts)
        made += 1
    return made


async def handle_stripe_event(event: StripeEventReceived, deps: Deps) -> str:
    """Reconcile a verified Stripe event, idempotently per Stripe event id.

    PaymentIntent events re-read the intent from Stripe (events may arrive late, twice or out
    of order) and never move a paid invoice; refunds update the refunded amount. Other types
    are recorded and ignored.
    """
    tracking: dict[str, Any] = {"consumer": STRIPE_CONSUMER, "event_id": event.event_id}
    if await deps.store.processed(STRIPE_CONSUMER, event.event_id):
        return "duplicate"
    obj = (event.payload.get("data") or {}).get("object") or {}
    decision = "ignore"
    if event.stripe_event_type in INTENT_EVENTS:
        decision = await _reconcile_intent(obj, deps, tracking)
    elif event.stripe_event_type in REFUND_EVENTS:
        decision = await _reconcile_refund(obj, deps, tracking)
    else:
        await deps.store.commit(**tracking)
    STRIPE_EVENTS.labels(event.stripe_event_type, decision).inc()
    return decision


async def _reconcile_intent(obj: dict[str, Any], deps: Deps, tracking: dict[str, Any]) -> str:
    invoice_id = (obj.get("metadata") or {}).get("invoice_id")
    record = await deps.store.invoice(invoice_id) if invoice_id else None
    if record is None or not obj.get("id"):
        await deps.store.commit(**tracking)
        return "ignore"
    status, result = await deps.gateway.intent(obj["id"])
    decision = domain.reconcile(record, result, status)
    if decision == "ignore":
        await deps.store.commit(**tracking)
        return "ignore"
    meta_attempt = str((obj.get("metadata") or {}).get("attempt", ""))
    attempt = int(meta_attempt) if meta_attempt.isdigit() else max(record.attempts, 1)
    at = effect_time(deps.settings.clock_mode, record.last_attempt_at or record.issued_at)
    outcome = await _commit_result(deps, record, result, attempt, at, **tracking)
    return decision if outcome != "duplicate" else "duplicate"


async def _reconcile_refund(obj: dict[str, Any], deps: Deps, tracking: dict[str, Any]) -> str:
    intent_id = obj.get("payment_intent")
    record = await deps.store.invoice_by_reference(intent_id) if intent_id else None
    if record is None:
        await deps.store.commit(**tracking)
        return "ignore"
    refunded = int(obj.get("amount_refunded", obj.get("amount", 0)) or 0)
    if obj.get("object") == "refund":
        refunded = record.refunded_amount + refunded
    new = replace(record, refunded_amount=max(record.refunded_amount, refunded))
    await deps.store.commit(record=new, **tracking)
    return "refund"


async def setup_method(tenant_id: str, payment_method: str, deps: Deps) -> str:
    """Make `payment_method` (a `pm_...` id or test token) the tenant's default, creating its
    Stripe customer (metadata `tenant_id`) when needed; returns e.g. `card visa 4242`.

    Raises `CardDeclined` (a `PermanentError`, reason `card_declined`) when Stripe declines
    the card on attaching it: nothing is stored, so the tenant keeps the method it had (or
    none). See docs/stripe-fake.md, "Test payment methods"."""
    known = await deps.store.customer(tenant_id)
    customer_id = await deps.gateway.ensure_customer(
        tenant_id, known.get("customer_id") if known else None)
    pm_id, description = await deps.gateway.attach_default(customer_id, payment_method)
    await deps.store.save_customer(tenant_id, customer_id, pm_id, description)
    return description


async def record_manual(invoice_number: str, method: str, reference: str,
                        paid_on: date | None, deps: Deps) -> InvoiceRecord:
    """Record a payment made outside Stripe (`ach`, `bank_transfer`) as `PaymentSucceeded`.

    Raises `PermanentError` (`unknown_invoice`, `already_paid`, `invalid_method`) when it
    cannot be recorded. `paid_on` (a date, at 00:00 UTC) defaults to now.
    """
    if method not in domain.MANUAL_METHODS:
        raise PermanentError("invalid_method", f"{method!r} is not one of {domain.MANUAL_METHODS}")
    record = await deps.store.invoice_by_number(invoice_number)
    if record is None:
        raise PermanentError("unknown_invoice", f"no issued invoice {invoice_number}")
    if record.status == "paid":
        raise PermanentError("already_paid", f"{invoice_number} is already paid")
    at = datetime.combine(paid_on, time(0), UTC) if paid_on else utc_now()
    paid, out = domain.settle(record, None, record.attempts, at, reference=reference,
                              method=method)
    if not await deps.store.commit(record=paid, expect_attempts=record.attempts,
                                   outgoing=_out(out, record.tenant_id)):
        raise PermanentError("already_paid", f"{invoice_number} changed meanwhile; try again")
    OUTCOMES.labels("manual").inc()
    return paid
