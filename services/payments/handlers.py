"""Use cases of the payments service, one function each.

Each consumes one input and makes its effects durable through `PaymentsStore.commit` (tracking
record + invoice state + outbox in one transaction). Charges are safe to repeat: the Stripe
idempotency key is per (invoice, attempt) and the invoice's PaymentIntents are looked up
before any charge, so a redelivery or a late replay finds Stripe's first answer instead of
charging twice (docs/payments.md "Outages"). A dunning charge and a manual payment exclude
each other through the invoice's charge lease (docs/payments.md "Charge lease").
"""

import logging
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from contracts import InvoiceIssued
from contracts.base import utc_now
from contracts.invoices import InvoiceStatus
from services.common.clock import effect_time
from services.common.errors import PermanentError
from services.payments import domain
from services.payments.adapters.metrics import OUTCOMES
from services.payments.adapters.store import Expect
from services.payments.charging import (
    Deps,
    charge,
    close_checkouts,
    commit_result,
    describe_later,
    existing_charge,
    lease_until,
    out,
)
from services.payments.domain import InvoiceRecord
from services.payments.reconcile import (
    INTENT_EVENTS,
    REFUND_EVENTS,
    STRIPE_CONSUMER,
    drain_parked,
    handle_stripe_event,
)

log = logging.getLogger(__name__)
INVOICE_CONSUMER = "payments.invoices"
__all__ = ["INTENT_EVENTS", "INVOICE_CONSUMER", "REFUND_EVENTS", "STRIPE_CONSUMER", "Deps",
           "handle_invoice_issued", "handle_stripe_event", "record_manual",
           "run_due_retries", "setup_method"]


async def handle_invoice_issued(event: InvoiceIssued, deps: Deps) -> str:
    """Charge a newly issued invoice once; returns what happened.

    Zero amount: `PaymentSucceeded` without a charge (`payment_method` "none"). A PaymentIntent
    Stripe already holds for the invoice (a kept webhook, or a charge whose commit was lost):
    its outcome, without a new charge. No payment method on file: recorded `pending_payment`
    (it waits for a manual payment; the outcome is `awaiting_payment`), nothing published.
    Otherwise a PaymentIntent (attempt 1) and `PaymentSucceeded` or `PaymentFailed`, dated by
    the billing clock (`effect_time`).
    Idempotent per event id and per invoice id. Raises `DependencyUnavailable` while Stripe
    cannot be reached (nothing written; the caller retries).
    """
    tracking: dict[str, Any] = {"consumer": INVOICE_CONSUMER, "event_id": event.event_id}
    if await deps.store.processed(INVOICE_CONSUMER, event.event_id):
        await drain_parked(deps, event.invoice_id)  # in case a redelivery ended before it
        return "duplicate"
    if await deps.store.invoice(event.invoice_id) is not None:  # re-issued copy of the invoice
        await deps.store.commit(**tracking)
        await drain_parked(deps, event.invoice_id)
        return "duplicate"
    record = InvoiceRecord.from_issued(event)
    at = effect_time(deps.settings.clock_mode, event.occurred_at)
    if record.amount == 0:
        paid, zero = domain.settle(record, None, 0, at, reference=domain.ZERO_AMOUNT_REFERENCE,
                                   method="none")
        if await deps.store.commit(record=paid, outgoing=out(zero, record.tenant_id),
                                   **tracking):
            OUTCOMES.labels("zero_amount").inc()
            return "zero_amount"
        return "duplicate"
    customer = await deps.store.customer(record.tenant_id)
    if not customer or not customer.get("payment_method_id"):
        found = await existing_charge(deps, record, customer, 1)
        if found is None:
            await deps.store.commit(record=record, **tracking)
            await drain_parked(deps, record.invoice_id)
            return "awaiting_payment"
        result, attempt = found.result, found.attempt or 1
    else:
        result, attempt = await charge(deps, record, customer, 1)
    outcome = await commit_result(deps, record, result, attempt, at, **tracking)
    await drain_parked(deps, record.invoice_id)
    await describe_later(deps, record, result)
    return outcome


async def run_due_retries(as_of: datetime, deps: Deps) -> int:
    """Retry every failed invoice whose next attempt is due at `as_of` (dunning); returns the
    number of attempts made. Each attempt takes the invoice's charge lease first (a manual
    payment is refused while it holds), expires the invoice's open Checkout pages (one that
    cannot be expired, completed meanwhile, leaves the invoice to its webhook: the lease is
    given back), has its own idempotency key, and commits only while it still holds the
    lease; its outcome is dated at `as_of` in event clock mode. An invoice changed meanwhile
    is left to the other run; a success that finds the invoice paid by hand meanwhile is
    recorded as a duplicate payment (`PaymentDuplicated`). A Stripe error gives the lease
    back and is raised (`DependencyUnavailable`, `PermanentError`)."""
    made = 0
    for record in await deps.store.due_retries(as_of):
        customer = await deps.store.customer(record.tenant_id)
        if not customer or not customer.get("payment_method_id"):
            continue
        attempt = record.attempts + 1
        at = effect_time(deps.settings.clock_mode, as_of)
        until = lease_until(deps)
        if not await deps.store.mark_attempt(record.invoice_id, record.attempts, at, until):
            continue
        leased = replace(record, last_attempt_at=at, charging=attempt, charging_until=until)
        try:
            if not await close_checkouts(deps, record, customer.get("customer_id")):
                await deps.store.release_attempt(record.invoice_id, attempt)
                continue
            result, used = await charge(deps, leased, customer, attempt)
        except BaseException:
            await deps.store.release_attempt(record.invoice_id, attempt)
            raise
        await commit_result(deps, leased, result, used, at, expect=Expect(charging=attempt))
        await describe_later(deps, leased, result)
        made += 1
    return made


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

    `paid_on` is a date in the tenant's time zone (paid at its midnight there,
    docs/payments.md "Manual payments"); it defaults to now. The invoice's open Checkout
    pages are expired first, so none takes money afterwards. Raises `PermanentError`
    (`unknown_invoice`, `already_paid`, `invalid_method`, or `charge_in_flight` while a Stripe
    charge of the invoice holds its lease or a Checkout page of it completed meanwhile: try
    again once it ends) or `DependencyUnavailable` while Stripe cannot be reached.
    """
    if method not in domain.MANUAL_METHODS:
        raise PermanentError("invalid_method", f"{method!r} is not one of {domain.MANUAL_METHODS}")
    record = await deps.store.invoice_by_number(invoice_number)
    if record is None:
        raise PermanentError("unknown_invoice", f"no issued invoice {invoice_number}")
    if record.status == InvoiceStatus.paid:
        raise PermanentError("already_paid", f"{invoice_number} is already paid")
    now = utc_now()
    if record.leased(now):
        raise PermanentError("charge_in_flight", f"a Stripe charge of {invoice_number} is in "
                             "flight; try again when it has ended")
    customer = await deps.store.customer(record.tenant_id)
    if not await close_checkouts(deps, record, (customer or {}).get("customer_id")):
        raise PermanentError("charge_in_flight", f"a Checkout payment of {invoice_number} "
                             "completed meanwhile; try again once it is reconciled")
    at = domain.manual_paid_at(paid_on, record.timezone) if paid_on else now
    paid, event = domain.settle(record, None, record.attempts, at, reference=reference,
                                method=method)
    idle = Expect(status=record.status, attempts=record.attempts, idle_at=now)
    if not await deps.store.commit(record=paid, expect=idle,
                                   outgoing=out(event, record.tenant_id)):
        raise PermanentError("charge_in_flight", f"{invoice_number} changed meanwhile; "
                             "try again")
    OUTCOMES.labels("manual").inc()
    return paid
