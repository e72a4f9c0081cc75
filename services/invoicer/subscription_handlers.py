"""Use cases of subscriptions: `SubscriptionRequested` (signed command on
`billing.tenant-config.v1`), `SubscriptionCheckoutCompleted` (the payments service, on
`billing.payment.v1`, trusted like `PaymentSucceeded`) and the cycle's period rollover
(docs/plans.md, "Subscriptions"; the rules in `subscriptions.py`).

Each command runs in one MongoDB transaction with its processed-event record (idempotent per
event id), after applying what its subscription had scheduled before the command's instant
(as the cycle would have): the subscription document, the configuration version it writes (with its
`BillingConfigApplied`), `SubscriptionChanged` and `UsageLimitsChanged` in the outbox. A
refusal is audited in `invoicer_audit` before it is raised (the worker dead-letters it).
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession

from contracts import (
    Plan,
    SubscriptionChanged,
    SubscriptionCheckoutCompleted,
    SubscriptionRequested,
)
from contracts.base import Event, utc_now
from contracts.config import Actor
from contracts.topics import TOPIC_TENANT
from services.common.errors import Forbidden, PermanentError
from services.common.signing import verify
from services.invoicer.adapters.invoice_store import ended_gap
from services.invoicer.adapters.plans import plan_version
from services.invoicer.adapters.store import InvoicerStore, tenant_config
from services.invoicer.adapters.subscriptions import (
    SUBSCRIPTION_CONSUMER,
    Doc,
    record_subscription_refusal,
    save_subscription,
    subscription_doc,
)
from services.invoicer.metrics import CONFIG_REFUSALS
from services.invoicer.periods import local_date, local_midnight
from services.invoicer.subscription_rollover import roll_one
from services.invoicer.subscription_windows import (
    current_period,
    first_uninvoiced,
    limits_event,
    pending_start,
    write_version,
)
from services.invoicer.subscriptions import (
    ALLOWED_ROLES,
    check_change,
    is_upgrade,
    plan_config,
)

log = logging.getLogger(__name__)
#: The old plan's name on the proration lines of a start on a configured tenant.
PREVIOUS_PRICING = "previous pricing"
PAYMENTS_ACTOR = Actor(user_id="payments", role="super")


@dataclass(frozen=True)
class Request:
    """A subscription command as the rules see it (from either contract): `at` is when it
    takes effect (the command's `occurred_at`, or the checkout's `completed_at`)."""

    event_id: str
    tenant_id: str
    action: str
    plan_code: str | None
    plan_version: int | None
    at: datetime
    actor: Actor
    billing_email: str | None = None
    tenant_name: str | None = None
    timezone: str | None = None


async def apply_signed_subscription(
    store: InvoicerStore, command: SubscriptionRequested, key: bytes
) -> str | None:
    """Verify `command`'s signature under `key` (unsigned or badly signed: audited,
    `Forbidden`), then apply it (`apply_subscription`)."""
    if not verify(command, key):
        cause = "bad_signature" if command.signature else "unsigned"
        detail = f"subscription command {command.event_id!r} is {cause.replace('_', ' ')}"
        await _refuse(store, command, command.actor, "forbidden", detail)
        CONFIG_REFUSALS.labels(cause=cause).inc()
        raise Forbidden(detail)
    return await apply_subscription(store, command)


async def apply_subscription(store: InvoicerStore, command: SubscriptionRequested) -> str | None:
    """Apply a verified subscription command; returns the `SubscriptionChanged.change` it
    made, or None (a redelivered event id, a cancel already scheduled).

    Actor role `super`, or `tenant` (the signing API lets a tenant sign only for its own
    tenant). Raises, after auditing: `Forbidden`, `PermanentError` with reason
    `plan_unknown`, `already_subscribed`, `not_subscribed`, `currency_mismatch`, `same_plan`,
    `billing_email_required`, `cancel_scheduled`, `start_scheduled`,
    `plan_version_not_current` (actor role `tenant` naming a version other than the plan's
    newest)."""
    request = Request(command.event_id, command.tenant_id, command.action, command.plan_code,
                      command.plan_version, command.occurred_at, command.actor,
                      command.billing_email, command.tenant_name, command.timezone)
    try:
        if command.actor.role not in ALLOWED_ROLES:
            raise Forbidden(f"actor {command.actor.user_id!r} with role "
                            f"{command.actor.role!r} may not change a subscription")
        return await _run(store, request)
    except PermanentError as exc:
        await _refuse(store, command, command.actor, exc.reason, exc.detail)
        CONFIG_REFUSALS.labels(cause=exc.reason).inc()
        raise


async def apply_checkout_completed(
    store: InvoicerStore, event: SubscriptionCheckoutCompleted
) -> str | None:
    """Start the subscription a completed Checkout Session paid for (a `start` at
    `completed_at`); idempotent per event id (one per Checkout Session), so Stripe's
    redeliveries start it once. Refusals as `apply_subscription`'s, audited."""
    request = Request(event.event_id, event.tenant_id, "start", event.plan_code,
                      event.plan_version, event.completed_at, PAYMENTS_ACTOR,
                      event.billing_email, event.tenant_name, event.timezone)
    try:
        return await _run(store, request)
    except PermanentError as exc:
        await _refuse(store, event, PAYMENTS_ACTOR, exc.reason, exc.detail)
        CONFIG_REFUSALS.labels(cause=exc.reason).inc()
        raise


async def _refuse(store: InvoicerStore, command: Event, actor: Actor, reason: str,
                  detail: str) -> None:
    who = {"user_id": actor.user_id, "role": actor.role}
    await record_subscription_refusal(store.db, command, who, reason, detail, utc_now())


async def _run(store: InvoicerStore, request: Request) -> str | None:
    outcome = await store.transaction(lambda session: _apply(store, request, session))
    if outcome is not None:
        log.info("subscription %s", outcome, extra={"tenant_id": request.tenant_id})
    return outcome


async def _apply(store: InvoicerStore, req: Request, session: AsyncClientSession) -> str | None:
    if await store.seen(SUBSCRIPTION_CONSUMER, req.event_id, session):
        return None
    sub = await subscription_doc(store.db, req.tenant_id, session)
    if sub is not None and sub["status"] == "active" and sub["period_end"] <= req.at:
        await roll_one(store, req.tenant_id, req.at, session)  # what was due before it first
        sub = await subscription_doc(store.db, req.tenant_id, session)
    if req.action == "cancel" and sub is not None and sub.get("cancel_at_period_end"):
        outcome: str | None = None  # cancelled already: nothing changes
    elif req.action == "start":
        outcome = await _start(store, req, sub, session)
    elif req.action == "change":
        outcome = await _change(store, req, _active(sub, req.tenant_id), session)
    else:
        outcome = await _cancel(store, req, _active(sub, req.tenant_id, pending_ok=True),
                                session)
    await store.mark_processed(SUBSCRIPTION_CONSUMER, req.event_id, session)
    return outcome


def _active(sub: Doc | None, tenant_id: str, *, pending_ok: bool = False) -> Doc:
    if sub is None or sub["status"] != "active":
        raise PermanentError("not_subscribed", f"tenant {tenant_id!r} has no active "
                             "subscription")
    if sub.get("start_pending") and not pending_ok:
        raise PermanentError("start_scheduled", f"the subscription of tenant {tenant_id!r} "
                             "starts at the period's end: change it after it started, or "
                             "cancel it")
    if sub.get("cancel_at_period_end"):
        raise PermanentError("cancel_scheduled", f"the subscription of tenant {tenant_id!r} "
                             "ends at the period's end: subscribe again after it ends")
    return sub


async def _plan(store: InvoicerStore, req: Request, session: AsyncClientSession
                ) -> tuple[Plan, int]:
    assert req.plan_code is not None  # the contract requires it for start and change
    found = await plan_version(store.db, req.plan_code, req.plan_version, session)
    if found is None:
        which = f" version {req.plan_version}" if req.plan_version else ""
        raise PermanentError("plan_unknown", f"no plan {req.plan_code!r}{which}")
    if req.actor.role == "tenant" and req.plan_version is not None:
        newest = await plan_version(store.db, req.plan_code, None, session)
        if newest is not None and newest.version != found.version:
            raise PermanentError("plan_version_not_current", f"a tenant may choose only the "
                                 f"newest version of plan {req.plan_code!r} "
                                 f"({newest.version}), not {found.version}")
    return found.plan, found.version


async def _start(store: InvoicerStore, req: Request, sub: Doc | None,
                 session: AsyncClientSession) -> str:
    if sub is not None and sub["status"] == "active":
        raise PermanentError("already_subscribed", f"tenant {req.tenant_id!r} is subscribed "
                             f"to {sub['plan']['code']!r}")
    plan, version = await _plan(store, req, session)
    tenant = await store.tenant(req.tenant_id, session)
    base = tenant_config(tenant) if tenant is not None else None
    # after a subscription ended nothing is billed until the new start: any currency
    restart = tenant is not None and ended_gap(tenant)
    if base is not None and not restart and (  # no proration across grids or currencies
            base.settings.billing_frequency != plan.billing_frequency
            or base.settings.currency != plan.currency):
        pending, end = await pending_start(store, req.tenant_id, req.at, sub, plan, version,
                                           session)
        await _publish(store, pending, "started", end, req, session)
        return "started"
    at = req.at if base is None else max(req.at, base.occurred_at)  # never behind it
    late = False
    if base is not None and not restart:  # nothing changes an invoiced period
        uninvoiced = await first_uninvoiced(store, req.tenant_id, session)
        late, at = at < uninvoiced, max(at, uninvoiced)
    if restart:  # billing resumes at the start day's midnight, after the gap
        assert base is not None
        resume = local_midnight(local_date(req.at, base.timezone), base.timezone)
        await store.tenants.update_one({"_id": req.tenant_id}, {
            "$set": {"billing_resumes_at": resume}}, session=session)
        at = max(resume, base.occurred_at)  # the new grid cuts the first period
        if base.settings.currency != plan.currency:  # raw amounts of the old currency
            base = base.model_copy(update={"coupon": None, "credits": ()})
    config = plan_config(plan, tenant_id=req.tenant_id, at=at, event_id=req.event_id,
                         actor=req.actor, base=base, billing_email=req.billing_email,
                         tenant_name=req.tenant_name, timezone=req.timezone)
    changes = [] if base is None or restart or late else [
        {"at": at, "old_name": PREVIOUS_PRICING, "old_fee": base.settings.flat_rate_amount,
         "new_name": plan.name, "new_fee": plan.flat_amount}]
    await write_version(store, config, session)
    doc: Doc = {
        "_id": req.tenant_id, "status": "active", "plan": plan.model_dump(mode="json"),
        "plan_version": version, "started_at": req.at, "cancel_at_period_end": False,
        "scheduled": None, "ended_at": None,
        "limits_version": int((sub or {}).get("limits_version", 0)),
        "changes": [*(sub or {}).get("changes", []), *changes],
    }
    await _publish(store, doc, "started", at, req, session, window_at=at)
    return "started"


async def _change(store: InvoicerStore, req: Request, sub: Doc,
                  session: AsyncClientSession) -> str:
    plan, version = await _plan(store, req, session)
    current = Plan.model_validate(sub["plan"])
    check_change(current, int(sub["plan_version"]), plan, version)
    if not is_upgrade(current, plan):
        at = await _period_end(store, req, session)
        sub["scheduled"] = {"plan": plan.model_dump(mode="json"), "plan_version": version,
                            "at": at}
        await _publish(store, sub, "downgrade_scheduled", at, req, session)
        return "downgrade_scheduled"
    tenant = await store.tenant(req.tenant_id, session)
    base = tenant_config(tenant) if tenant is not None else None
    at = req.at if base is None else max(req.at, base.occurred_at)  # never behind it
    uninvoiced = await first_uninvoiced(store, req.tenant_id, session)
    late, at = at < uninvoiced, max(at, uninvoiced)  # nothing changes an invoiced period
    config = plan_config(plan, tenant_id=req.tenant_id, at=at, event_id=req.event_id,
                         actor=req.actor, base=base, billing_email=None, tenant_name=None,
                         timezone=None)
    await write_version(store, config, session)
    sub["changes"] = [*sub.get("changes", []), *([] if late else [{
        "at": at, "old_name": current.name, "old_fee": current.flat_amount,
        "new_name": plan.name, "new_fee": plan.flat_amount}])]
    sub.update(plan=plan.model_dump(mode="json"), plan_version=version, scheduled=None)
    await _publish(store, sub, "upgraded", at, req, session, window_at=at)
    return "upgraded"


async def _cancel(store: InvoicerStore, req: Request, sub: Doc,
                  session: AsyncClientSession) -> str:
    at = await _period_end(store, req, session)
    sub.update(cancel_at_period_end=True, scheduled=None)
    await store.tenants.update_one({"_id": req.tenant_id}, {"$set": {"billing_ends_at": at}},
                                   session=session)
    await _publish(store, sub, "cancel_scheduled", at, req, session)
    return "cancel_scheduled"


async def _period_end(store: InvoicerStore, req: Request, session: AsyncClientSession
                      ) -> datetime:
    return (await current_period(store, req.tenant_id, req.at, session)).end


async def _publish(store: InvoicerStore, sub: Doc, change: str, effective_at: datetime,
                   req: Request, session: AsyncClientSession,
                   window_at: datetime | None = None) -> None:
    """Save `sub` with its limits window (the period containing `window_at`, default the
    command's instant) and queue `SubscriptionChanged` and `UsageLimitsChanged`."""
    limits = await limits_event(store, sub, window_at or req.at, session)
    plan = Plan.model_validate(sub["plan"])
    scheduled = sub.get("scheduled")
    changed = SubscriptionChanged(
        event_id=f"subscription-changed:{req.event_id}", occurred_at=req.at,
        tenant_id=req.tenant_id, change=change,
        status=sub["status"], plan_code=plan.code, plan_version=int(sub["plan_version"]),
        scheduled_plan_code=scheduled["plan"]["code"] if scheduled else None,
        effective_at=effective_at, cancel_at_period_end=bool(sub.get("cancel_at_period_end")))
    await save_subscription(store.db, sub, session)
    await store.add_outbox([(changed, TOPIC_TENANT, req.tenant_id),
                            (limits, TOPIC_TENANT, req.tenant_id)], session)
