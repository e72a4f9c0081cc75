"""Charging an invoice through Stripe and committing the outcome, shared by the use cases.

Order of every charge (docs/payments.md "Outages"): look the invoice's PaymentIntents up at
Stripe first (a replay after Stripe's 24 h idempotency window must not charge twice), charge
with the (invoice, attempt) idempotency key, commit the result, and only then make follow-up
calls (the card's description is best effort after the commit).
"""

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from contracts import TOPIC_PAYMENT
from contracts.base import Event, utc_now
from contracts.invoices import InvoiceStatus
from services.common.errors import BillingError
from services.payments import domain
from services.payments.adapters.metrics import ATTEMPTS, OUTCOMES
from services.payments.adapters.store import Customer, Expect, Outgoing, PaymentsStore
from services.payments.adapters.stripe_gateway import PaymentGateway
from services.payments.domain import ChargeResult, Intent, InvoiceRecord
from services.payments.settings import PaymentsSettings

log = logging.getLogger(__name__)


@dataclass
class Deps:
    """What the handlers need, built once at start-up. `stop` is set when the worker shuts
    down (a message waiting out a Stripe outage then hands its work back)."""

    settings: PaymentsSettings
    store: PaymentsStore
    gateway: PaymentGateway
    stop: asyncio.Event | None = None


def out(event: Event, tenant_id: str) -> Outgoing:
    """`event` as an outbox entry on `billing.payment.v1`, keyed by the tenant."""
    return [(event, TOPIC_PAYMENT, tenant_id)]


def with_description(result: ChargeResult, customer: Customer | None) -> ChargeResult:
    """`result` with its card described from what the tenant's record already knows (no
    Stripe call); `card` when the charged method is not the recorded default."""
    if not result.succeeded or result.payment_method:
        return result
    known = customer or {}
    same = result.payment_method_id and result.payment_method_id == known.get(
        "payment_method_id")
    return replace(result, payment_method=(known.get("payment_method") if same else None)
                   or "card")


async def describe_later(deps: Deps, record: InvoiceRecord, result: ChargeResult) -> None:
    """Best effort, after the commit: store the card's description when it was unknown."""
    if result.payment_method != "card" or not result.payment_method_id:
        return
    try:
        described = await deps.gateway.describe_method(result.payment_method_id)
    except BillingError as exc:
        log.warning("card of %s not described: %s", record.invoice_number, exc)
        return
    if described:
        await deps.store.set_payment_method(record.invoice_id, described)


async def existing_charge(deps: Deps, record: InvoiceRecord, customer: Customer | None,
                          attempt: int) -> Intent | None:
    """A PaymentIntent Stripe already holds for this invoice that settles `attempt`: a
    succeeded one (whatever its attempt), else the one made for `attempt`. Looked for among
    the Stripe events kept for the invoice and the customer's PaymentIntents; only intents
    whose invoice id, amount and currency match the record count."""
    candidates: list[Intent] = []
    for parked in await deps.store.parked(record.invoice_id):
        candidates.append(await deps.gateway.intent(parked.intent_id))
    if customer and customer.get("customer_id"):
        candidates += await deps.gateway.invoice_intents(customer["customer_id"],
                                                         record.invoice_id)
    usable = [i for i in candidates if domain.mismatch(record, i) is None]
    succeeded = [i for i in usable if i.status == "succeeded"]
    if succeeded:
        return succeeded[0]
    same = [i for i in usable if i.attempt == attempt
            and i.status in ("requires_payment_method", "canceled")]
    return same[0] if same else None


async def close_checkouts(deps: Deps, record: InvoiceRecord, customer_id: str | None) -> bool:
    """Expire the invoice's open payment-mode Checkout Sessions, so no hosted page can take
    money once the invoice is being paid another way (card on file, dunning, manual
    payment). False when one could not be expired (it completed or closed meanwhile: its
    payment may be on its way). Raises `DependencyUnavailable` while Stripe cannot be
    reached."""
    if not customer_id:
        return True
    closed = True
    for session in await deps.gateway.open_checkouts(customer_id):
        if session.mode == "payment" and session.metadata.get("invoice_id") == record.invoice_id:
            closed = await deps.gateway.expire_checkout(session.session_id) and closed
    return closed


async def charge(deps: Deps, record: InvoiceRecord, customer: Customer,
                 attempt: int, source: str | None = None) -> tuple[ChargeResult, int]:
    """The result of `attempt`: an existing PaymentIntent of the invoice (then its own
    attempt number) or a new off-session charge with the (invoice, attempt) key; `source`
    (e.g. `pay_now`) goes into its metadata."""
    found = await existing_charge(deps, record, customer, attempt)
    if found is not None:
        return with_description(found.result, customer), found.attempt or attempt
    ATTEMPTS.labels("initial" if attempt == 1 else "retry").inc()
    result = await deps.gateway.charge(
        customer_id=customer["customer_id"], payment_method_id=customer["payment_method_id"],
        amount=record.amount, currency=record.currency,
        idempotency_key=domain.idempotency_key(record.invoice_id, attempt),
        metadata={"tenant_id": record.tenant_id, "invoice_id": record.invoice_id,
                  "invoice_number": record.invoice_number, "attempt": str(attempt),
                  **({"source": source} if source else {})},
    )
    return with_description(result, customer), attempt


async def commit_result(deps: Deps, record: InvoiceRecord, result: ChargeResult, attempt: int,
                        at: datetime, expect: Expect | None = None, by_tenant: bool = False,
                        **tracking: Any) -> str:
    """Commit a charge outcome (`PaymentSucceeded` or `PaymentFailed`) if the stored record
    still matches `expect`; `by_tenant`: a Pay now click, whose failure leaves the dunning
    schedule as it was (`domain.fail`). When the invoice was paid meanwhile by something
    else and this charge succeeded, the money is recorded as a duplicate payment
    (`PaymentDuplicated`). Returns `succeeded`, `failed`, `duplicate_payment`, `duplicate`
    (nothing new: already processed or already known) or `stale` (the record changed;
    nothing written)."""
    event: Event
    if result.succeeded:
        new, event = domain.settle(record, result, attempt, at)
        outcome = "succeeded"
    else:
        new, event = domain.fail(record, result, attempt, at,
                                 deps.settings.payments_dunning_schedule_days, by_tenant)
        outcome = "failed"
    if await deps.store.commit(record=new, outgoing=out(event, record.tenant_id), expect=expect,
                               **tracking):
        OUTCOMES.labels(outcome).inc()
        return outcome
    if tracking and await deps.store.processed(tracking["consumer"], tracking["event_id"]):
        return "duplicate"
    if not result.succeeded:
        return "stale"
    return await record_duplicate(deps, record.invoice_id, result, at, **tracking)


async def record_duplicate(deps: Deps, invoice_id: str, result: ChargeResult, at: datetime,
                           **tracking: Any) -> str:
    """Record succeeded charge `result` of an invoice paid by another reference and emit
    `PaymentDuplicated` (with `tracking`, in the same transaction). Returns
    `duplicate_payment`, `duplicate` (this intent is already known: tracking is committed)
    or `stale` (the invoice is not paid: nothing written)."""
    for _ in range(3):
        current = await deps.store.invoice(invoice_id)
        if current is None or current.status != InvoiceStatus.paid:
            return "stale"
        if current.knows_intent(result.payment_intent_id):
            if tracking:
                await deps.store.commit(**tracking)
            return "duplicate"
        new, event = domain.duplicate(current, result, at)
        if await deps.store.commit(record=new, outgoing=out(event, current.tenant_id),
                                   expect=Expect(status=InvoiceStatus.paid,
                                                 without_duplicate=result.payment_intent_id),
                                   **tracking):
            OUTCOMES.labels("duplicate_payment").inc()
            log.warning("%s paid twice: %s (refund it)", current.invoice_number,
                        result.payment_intent_id)
            return "duplicate_payment"
        if tracking and await deps.store.processed(tracking["consumer"], tracking["event_id"]):
            return "duplicate"
    return "stale"


def lease_until(deps: Deps) -> datetime:
    """Until when (wall clock) a charge starting now holds its invoice's lease."""
    return utc_now() + timedelta(seconds=deps.settings.payments_charge_lease_seconds)
