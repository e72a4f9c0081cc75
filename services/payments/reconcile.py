"""Reconciling verified Stripe events, idempotently per Stripe event id (docs/payments.md
"Webhooks", "Refunds", "Paying from the portal").

A PaymentIntent event is never taken at its word: the intent is re-read from Stripe and ITS
metadata invoice id, amount and currency must match the invoice record, else nothing is
applied and the event is audited (`PaymentsStore` audit entries) and counted. An intent of an
invoice not known yet is kept (parked) and reconciled when the invoice arrives. Refunds
count once per refund id, with the amount of the refund object.
"""

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from contracts import StripeEventReceived
from contracts.base import utc_now
from services.common.clock import effect_time
from services.common.errors import BillingError
from services.payments import domain, subscription_checkout
from services.payments.adapters.metrics import (
    PARKED_EVENTS,
    REFUNDS,
    STRIPE_EVENTS,
    WEBHOOK_MISMATCHES,
)
from services.payments.adapters.store import AuditEntry, Expect, ParkedEvent
from services.payments.charging import (
    Deps,
    commit_result,
    describe_later,
    out,
    record_duplicate,
    with_description,
)
from services.payments.checkout_events import CHECKOUT_COMPLETED, CHECKOUT_EXPIRED, setup_completed
from services.payments.domain import ChargeResult, Intent, InvoiceRecord, Refund

log = logging.getLogger(__name__)
STRIPE_CONSUMER = "payments.stripe-events"
INTENT_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed")
REFUND_EVENTS = ("charge.refunded", "refund.created", "refund.updated")
CUSTOMER_UPDATED = "customer.updated"


async def handle_stripe_event(event: StripeEventReceived, deps: Deps) -> str:
    """Reconcile one verified Stripe event; returns the decision (`succeed`, `fail`,
    `duplicate` (money received twice), `parked`, `mismatch`, `refund`, `default_method` (a
    card set up through Checkout or the billing portal is now the default),
    `subscription_checkout` (also a subscription's `SubscriptionCheckoutCompleted` is in the
    outbox), `checkout_expired` (a subscription checkout was closed), `ignore`) or
    `duplicate` for an event id already processed. Other event types are recorded and
    ignored. Raises `DependencyUnavailable` while Stripe cannot be read (nothing written)."""
    tracking: dict[str, Any] = {"consumer": STRIPE_CONSUMER, "event_id": event.event_id}
    if await deps.store.processed(STRIPE_CONSUMER, event.event_id):
        return "duplicate"
    obj = (event.payload.get("data") or {}).get("object") or {}
    if event.stripe_event_type in INTENT_EVENTS:
        decision = await reconcile_intent(event.event_id, obj, deps, tracking)
    elif event.stripe_event_type in REFUND_EVENTS:
        decision = await reconcile_refunds(obj, deps, tracking)
    elif event.stripe_event_type == CHECKOUT_COMPLETED:
        decision = await checkout_completed(event.event_id, obj, deps, tracking,
                                            event.occurred_at)
    elif event.stripe_event_type == CHECKOUT_EXPIRED:
        decision = await subscription_checkout.expired(obj, deps, tracking)
    elif event.stripe_event_type == CUSTOMER_UPDATED:
        decision = await subscription_checkout.customer_updated(obj, deps, tracking)
    else:
        await deps.store.commit(**tracking)
        decision = "ignore"
    STRIPE_EVENTS.labels(event.stripe_event_type, decision).inc()
    return decision


async def checkout_completed(stripe_event_id: str, obj: dict[str, Any], deps: Deps,
                             tracking: dict[str, Any], at: datetime | None = None) -> str:
    """A completed Checkout Session, re-read from Stripe: payment mode reconciles its
    PaymentIntent (as its own events do); setup mode makes its card the default."""
    if not obj.get("id"):
        await deps.store.commit(**tracking)
        return "ignore"
    session = await deps.gateway.checkout_session(str(obj["id"]))
    if session.mode == "payment" and session.payment_intent_id:
        return await reconcile_intent(stripe_event_id, {"id": session.payment_intent_id}, deps,
                                      tracking)
    return await setup_completed(session, deps, tracking, at)


async def reconcile_intent(stripe_event_id: str, obj: dict[str, Any], deps: Deps,
                           tracking: dict[str, Any]) -> str:
    """Apply the PaymentIntent named by a Stripe event, after re-reading and checking it."""
    if not obj.get("id"):
        await deps.store.commit(**tracking)
        return "ignore"
    intent = await deps.gateway.intent(str(obj["id"]))
    record = await deps.store.invoice(intent.invoice_id) if intent.invoice_id else None
    if record is None:
        if intent.invoice_id is None:  # not one of ours
            await deps.store.commit(**tracking)
            return "ignore"
        parked = ParkedEvent(stripe_event_id, intent.invoice_id, str(obj["id"]), utc_now())
        if await deps.store.commit(park=parked, **tracking):
            PARKED_EVENTS.inc()
        return "parked"
    reason = domain.mismatch(record, intent)
    if reason is not None:
        payload_invoice = (obj.get("metadata") or {}).get("invoice_id")
        audit = AuditEntry(
            stripe_event_id, str(obj["id"]), record.invoice_id, reason, utc_now(),
            f"intent {intent.amount} {intent.currency} for {intent.invoice_id}; "
            f"invoice {record.amount} {record.currency}; payload names {payload_invoice}")
        if await deps.store.commit(audit=audit, **tracking):
            WEBHOOK_MISMATCHES.labels(reason).inc()
            log.warning("Stripe event %s not applied to %s: %s", stripe_event_id,
                        record.invoice_number, audit.detail)
        return "mismatch"
    return await apply_intent(deps, record, intent, tracking)


async def apply_intent(deps: Deps, record: InvoiceRecord, intent: Intent,
                       tracking: dict[str, Any]) -> str:
    """Apply a checked intent to `record` (re-read and tried again if it changed meanwhile);
    returns the decision. With empty `tracking` nothing marks an event processed."""
    customer = await deps.store.customer(record.tenant_id)
    result = with_description(intent.result, customer)
    if intent.checkout and result.succeeded and result.payment_method == "card":
        result = await described(deps, result)
    for _ in range(5):
        decision = domain.reconcile(record, result, intent.status, intent.checkout)
        if decision == "ignore":
            if tracking:
                await deps.store.commit(**tracking)
            return "ignore"
        at = effect_time(deps.settings.clock_mode, record.last_attempt_at or record.issued_at)
        if decision == "duplicate":
            outcome = await record_duplicate(deps, record.invoice_id, result, at, **tracking)
        else:
            attempt = intent.attempt or max(record.attempts, 1)
            outcome = await commit_result(
                deps, record, result, attempt, at,
                expect=Expect(status=record.status, attempts=record.attempts),
                by_tenant=intent.by_tenant, **tracking)
        if outcome in ("succeeded", "failed"):
            await describe_later(deps, record, result)
            return decision
        if outcome == "duplicate_payment":
            return "duplicate"
        if outcome == "duplicate":
            return "ignore" if decision != "duplicate" else "duplicate"
        fresh = await deps.store.invoice(record.invoice_id)  # stale: changed meanwhile
        if fresh is None:
            break
        record = fresh
    raise RuntimeError(f"{record.invoice_number} kept changing while reconciling")


async def described(deps: Deps, result: ChargeResult) -> ChargeResult:
    """`result` with its card described (`card visa 4242`) from Stripe before the commit: a
    card entered on a Checkout page is not the tenant's default, and no charge is in flight
    here. Best effort: `result` unchanged when Stripe cannot say."""
    if not result.payment_method_id:
        return result
    try:
        text = await deps.gateway.describe_method(result.payment_method_id)
    except BillingError as exc:
        log.warning("card %s not described: %s", result.payment_method_id, exc)
        return result
    return replace(result, payment_method=text or result.payment_method)


async def drain_parked(deps: Deps, invoice_id: str) -> None:
    """Reconcile the Stripe events kept for `invoice_id` now that its record exists, then
    forget them (their event ids are already marked processed)."""
    parked = await deps.store.parked(invoice_id)
    for doc in parked:
        record = await deps.store.invoice(invoice_id)
        intent = await deps.gateway.intent(doc.intent_id)
        if record is None:
            return
        if domain.mismatch(record, intent) is None:
            await apply_intent(deps, record, intent, {})
    await deps.store.drop_parked([d.event_id for d in parked])


def _refunds(obj: dict[str, Any]) -> list[Refund]:
    """The refunds a `refund` or `charge` object carries (a charge lists its refunds)."""
    if obj.get("object") == "refund":
        items = [obj]
    else:
        items = list(((obj.get("refunds") or {}).get("data")) or [])
    return [Refund(str(r["id"]), int(r.get("amount") or 0), str(r.get("currency", "")).upper(),
                   str(r.get("payment_intent") or obj.get("payment_intent") or ""),
                   str(r.get("status") or ""),
                   datetime.fromtimestamp(int(r.get("created") or 0), UTC), r.get("reason"))
            for r in items if r.get("id")]


async def reconcile_refunds(obj: dict[str, Any], deps: Deps, tracking: dict[str, Any]) -> str:
    """Record every succeeded refund the object names that is not recorded yet, each with a
    `PaymentRefunded` (all in one transaction with the tracking record)."""
    refunds = [r for r in _refunds(obj) if r.status == "succeeded" and r.payment_intent]
    record = await deps.store.invoice_by_intent(refunds[0].payment_intent) if refunds else None
    if record is None:
        await deps.store.commit(**tracking)
        return "ignore"
    original = record
    events = []
    for rf in refunds:
        known = any(r == rf.refund_id for r, _, _ in record.refunds)
        if known or rf.currency != record.currency.upper() or rf.amount <= 0:
            continue
        record, event = domain.refund(record, rf)
        REFUNDS.labels("invoice" if event else "duplicate").inc()
        if event is not None:
            events.append(event)
    if record is original:
        await deps.store.commit(**tracking)
        return "ignore"
    outgoing = [entry for e in events for entry in out(e, record.tenant_id)]
    if await deps.store.commit(record=record, outgoing=outgoing,
                               expect=Expect(refunds=original.refunds), **tracking):
        return "refund"
    if await deps.store.processed(STRIPE_CONSUMER, tracking["event_id"]):
        return "duplicate"
    raise RuntimeError(f"{record.invoice_number} changed while recording refunds")

