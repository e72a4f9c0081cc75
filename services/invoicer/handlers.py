"""Use cases driven by consumed events: billing configuration and payment outcomes.

Each runs in one MongoDB transaction with its processed-event record (idempotent per event id)
and, where the state changes, the event that follows it in the outbox.
"""

import logging
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from contracts import (
    TOPIC_INVOICE,
    BillingConfigSubmitted,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    PlanSubmitted,
)
from contracts.base import utc_now
from contracts.config import BillingConfigApplied
from contracts.invoices import InvoiceStatus
from contracts.topics import TOPIC_TENANT
from services.common.errors import Forbidden, PermanentError
from services.common.signing import verify
from services.invoicer.adapters.invoice_store import ended_gap
from services.invoicer.adapters.store import InvoicerStore, tenant_config
from services.invoicer.adapters.subscriptions import subscribed
from services.invoicer.domain import (
    PaymentOutcome,
    authorize,
    check_submission_order,
    next_status,
    validate_config,
)
from services.invoicer.metrics import CONFIG_REFUSALS
from services.invoicer.operator_rules import OperatorCommand
from services.invoicer.periods import local_date, local_midnight
from services.invoicer.records import status_event
from services.invoicer.subscription_rollover import roll_one
from services.invoicer.subscriptions import keep_plan_pricing

log = logging.getLogger(__name__)
CONFIG_CONSUMER = "invoicer.config"
PAYMENT_CONSUMER = "invoicer.payment"


async def apply_config(store: InvoicerStore, command: BillingConfigSubmitted) -> int | None:
    """Accept `command` as the tenant's next configuration version; returns the version, or
    None when this event id was already applied (a redelivery).

    Every submission has its own event id, so submitting an earlier configuration again makes
    a new version. Versions follow submission order: a command submitted (`occurred_at`)
    before the tenant's current version is refused as `superseded` (docs/configuration.md,
    "Submissions and versions"). The version document records `submitted_at`.

    For a tenant with an active subscription, the flat amount, currency, billing frequency and
    price plan stay those of the plan in force at the command's instant (docs/plans.md,
    "Subscriptions"); the other fields apply. What the subscription had scheduled for a
    period end at or before that instant (a downgrade, an end) is applied first, in the same
    transaction, as the billing cycle would have. For a tenant whose subscription has ended,
    billing resumes at the later of that end and 00:00 (tenant zone) of the command's
    `effective_from`; the gap is not billed.

    The same transaction puts `BillingConfigApplied` (the version's contact settings) in the
    outbox for `billing.tenant.v1`, so the notifier's projection follows every version.

    Raises, after writing the audit record: `Forbidden` for a non-super actor,
    `InvalidMessage("validation_error")` for a configuration that breaks a rule, and
    `PermanentError("superseded")`. The version, the tenant's current configuration and the
    processed-event record are written in one transaction.
    """
    try:
        authorize(command)
        validate_config(command)
        version = await store.transaction(lambda session: _accept(store, command, session))
    except PermanentError as exc:
        await store.record_refusal(command, exc.reason, exc.detail, utc_now())
        CONFIG_REFUSALS.labels(cause=exc.reason).inc()
        raise
    if version is not None:
        log.info("config version %s accepted", version, extra={"tenant_id": command.tenant_id})
    return version


async def apply_signed_config(
    store: InvoicerStore, command: BillingConfigSubmitted, key: bytes
) -> int | None:
    """`apply_config` for a command read from `billing.tenant-config.v1`, after checking its
    signature under `key` (`services.common.signing.verify`, constant-time).

    An unsigned command, or one whose signature does not match its content under `key`
    (tampered after signing, or signed with another key), is audited and refused with
    `Forbidden` (dead letter `forbidden`) before anything else is looked at
    (docs/configuration.md, "Signed commands").
    """
    await refuse_unless_signed(
        store, command, key, f"configuration command for tenant {command.tenant_id!r}")
    return await apply_config(store, command)


async def refuse_unless_signed(
    store: InvoicerStore, command: BillingConfigSubmitted | OperatorCommand | PlanSubmitted,
    key: bytes,
    subject: str,
) -> None:
    """Return when `command` carries a valid signature under `key`; otherwise audit the refusal
    (`forbidden`, the detail naming `subject` and whether it was unsigned or badly signed),
    count it (`billing_config_commands_refused_total{cause=unsigned|bad_signature}`) and raise
    `Forbidden`."""
    if verify(command, key):
        return
    cause = "bad_signature" if command.signature else "unsigned"
    detail = (f"{subject} is unsigned" if cause == "unsigned" else
              f"{subject} has a signature that does not match its content under the "
              "platform's signing key")
    await store.record_refusal(command, "forbidden", detail, utc_now())
    CONFIG_REFUSALS.labels(cause=cause).inc()
    raise Forbidden(detail)


async def _accept(
    store: InvoicerStore, command: BillingConfigSubmitted, session: AsyncClientSession
) -> int | None:
    if await store.seen(CONFIG_CONSUMER, command.event_id, session):
        return None
    current = await store.tenant(command.tenant_id, session)
    if current is not None:
        check_submission_order(tenant_config(current), command)
        if await roll_one(store, command.tenant_id, command.occurred_at, session):
            current = await store.tenant(command.tenant_id, session)  # what was due first
        if await subscribed(store.db, command.tenant_id, session):
            plan_side = await store.config_in_force(command.tenant_id, command.occurred_at,
                                                    session)
            assert plan_side is not None
            command = keep_plan_pricing(command, plan_side.command)
        elif current is not None and ended_gap(current):  # resumes after the end
            start = local_midnight(command.effective_from, command.timezone)
            await store.tenants.update_one({"_id": command.tenant_id}, {"$set": {
                "billing_resumes_at": max(current["billing_ends_at"], start)}}, session=session)
    version = int((current or {}).get("version", 0)) + 1
    now = utc_now()
    await store.add_config_version(command, version, now, session)
    applied = BillingConfigApplied(
        event_id=f"config-applied:{command.tenant_id}:{version}", occurred_at=now,
        tenant_id=command.tenant_id, config_version=version, submitted_at=command.occurred_at,
        billing_email=command.settings.billing_email,
        email_notifications=command.settings.email_notifications,
    )
    await store.add_outbox([(applied, TOPIC_TENANT, command.tenant_id)], session)
    await store.mark_processed(CONFIG_CONSUMER, command.event_id, session)
    return version


async def apply_payment(
    store: InvoicerStore, event: PaymentSucceeded | PaymentFailed
) -> str | None:
    """Apply a payment outcome to its invoice; returns the new status when it changed.

    Idempotent per event id; never backwards (`domain.next_status`). A success records
    `paid_date` (the tenant-zone date of `paid_at`), `payment_reference` and `payment_method`.
    Raises `PermanentError("unknown_invoice")` when no such invoice exists.
    """
    outcome: PaymentOutcome = "succeeded" if isinstance(event, PaymentSucceeded) else "failed"

    async def txn(session: AsyncClientSession) -> str | None:
        if await store.seen(PAYMENT_CONSUMER, event.event_id, session):
            return None
        doc = await store.invoice(event.invoice_id, session)
        if doc is None:
            raise PermanentError("unknown_invoice", f"no invoice {event.invoice_id!r}")
        previous = InvoiceStatus(doc["status"])
        status = next_status(previous, outcome)
        changes: dict[str, Any] = {}
        if isinstance(event, PaymentFailed):
            changes["last_failure"] = {
                "event_id": event.event_id, "attempt": event.attempt,
                "failure_code": event.failure_code, "decline_code": event.decline_code,
                "message": event.failure_message, "at": event.occurred_at,
            }
            at = event.occurred_at
        else:
            at = event.paid_at
            if status != previous:
                changes.update(
                    paid_date=local_date(event.paid_at, doc["timezone"]).isoformat(),
                    payment_reference=event.payment_reference,
                    payment_method=event.payment_method,
                    paid_at=event.paid_at,
                )
        changed = status != previous
        if changed:
            changes["status"] = status
        if changes:
            update: dict[str, Any] = {"$set": changes}
            if changed:
                update["$push"] = {"history": {"status": status, "at": at,
                                               "cause": event.event_id}}
            await store.update_invoice(doc["_id"], previous, update, session)
        if changed:
            doc.update(changes)
            reason = None if outcome == "succeeded" else event.failure_message  # type: ignore[union-attr]
            out = status_event(doc, previous, status, event.event_id, at, reason)
            await store.add_outbox([(out, TOPIC_INVOICE, doc["tenant_id"])], session)
        await store.mark_processed(PAYMENT_CONSUMER, event.event_id, session)
        return status if changed else None

    return await store.transaction(txn)


REFUND_CONSUMER = "invoicer.refund"


async def apply_refund(store: InvoicerStore, event: PaymentRefunded) -> int | None:
    """Show a Stripe refund on its invoice (docs/payments.md "Refunds"): `refunded_amount`
    grows by `event.amount` (minor units) and the history gains an entry (status unchanged:
    a refunded invoice stays `paid`); `refunds` lists each refund once by its Stripe id, with
    its tenant-zone date for the month's revenue. Returns the new refunded amount, or None
    when this event or refund was already applied. Raises `PermanentError("unknown_invoice")`.
    """

    async def txn(session: AsyncClientSession) -> int | None:
        if await store.seen(REFUND_CONSUMER, event.event_id, session):
            return None
        doc = await store.invoice(event.invoice_id, session)
        if doc is None:
            raise PermanentError("unknown_invoice", f"no invoice {event.invoice_id!r}")
        await store.mark_processed(REFUND_CONSUMER, event.event_id, session)
        if any(r.get("refund_id") == event.refund_id for r in doc.get("refunds", [])):
            return None
        total = int(doc.get("refunded_amount", 0)) + event.amount
        day = local_date(event.refunded_at, doc["timezone"]).isoformat()
        await store.update_invoice(
            doc["_id"], None,
            {"$set": {"refunded_amount": total},
             "$push": {"refunds": {"refund_id": event.refund_id, "amount": event.amount,
                                   "refunded_date": day, "at": event.refunded_at},
                       "history": {"status": doc["status"], "at": event.refunded_at,
                                   "cause": event.event_id, "refund_id": event.refund_id,
                                   "refunded_amount": event.amount}}},
            session,
        )
        return total

    return await store.transaction(txn)
