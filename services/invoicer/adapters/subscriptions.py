"""Subscriptions in MongoDB (docs/plans.md, "Subscriptions").

    invoicer_subscriptions  one document per tenant, `_id` = the tenant id: `status`
                            (active | canceled), `plan` (the `Plan` version as JSON data),
                            `plan_version`, `started_at`, `period_start`/`period_end` (the
                            current limits window), `cancel_at_period_end`, `scheduled`
                            ({plan, plan_version, at} of a change waiting for the period's
                            end, or None), `ended_at`, `limits_version` (the counter of
                            `UsageLimitsChanged`), `changes` (immediate plan changes:
                            {at, old_name, old_fee, new_name, new_fee}, for proration),
                            `invoiced_through` (the end of the last period invoiced, written
                            by each issuing transaction)

Every write happens in the caller's transaction, with the configuration version, the outbox
entries and the processed-event record of the command that caused it.
"""

from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from contracts import Plan
from contracts.base import Event
from services.common.tracking import already_processed
from services.invoicer.periods import Period
from services.invoicer.subscriptions import PlanChange, SubscriptionView

SUBSCRIPTIONS = "invoicer_subscriptions"
AUDIT = "invoicer_audit"
#: The consumer name of the processed-event records of subscription commands.
SUBSCRIPTION_CONSUMER = "invoicer.subscription"
Doc = dict[str, Any]


def view_of(doc: Doc) -> SubscriptionView:
    """The `SubscriptionView` of a subscription document."""
    plan = Plan.model_validate(doc["plan"])
    scheduled = doc.get("scheduled") or {}
    return SubscriptionView(
        tenant_id=doc["_id"], status=doc["status"], plan_code=plan.code,
        plan_version=int(doc["plan_version"]), plan_name=plan.name,
        started_at=doc["started_at"], current_period_start=doc.get("period_start"),
        current_period_end=doc.get("period_end"),
        cancel_at_period_end=bool(doc.get("cancel_at_period_end")),
        scheduled_plan_code=Plan.model_validate(scheduled["plan"]).code if scheduled else None,
        scheduled_at=scheduled.get("at"))


async def subscription_of(db: AsyncDatabase[Doc], tenant_id: str) -> SubscriptionView | None:
    """The tenant's subscription (active, or the last one that ended), or None for a tenant
    that never subscribed."""
    doc = await db[SUBSCRIPTIONS].find_one({"_id": tenant_id})
    return None if doc is None else view_of(doc)


async def command_outcome(db: AsyncDatabase[Doc], event_id: str) -> str | None:
    """What became of subscription command (or completed checkout) `event_id`: `"applied"`
    once the invoicer processed it, the refusal's reason once it refused it (from
    `invoicer_audit`), None while neither happened."""
    if await already_processed(db, SUBSCRIPTION_CONSUMER, event_id):
        return "applied"
    refused = await db[AUDIT].find_one({"_id": event_id}, projection={"why": 1})
    return None if refused is None else str(refused["why"]["reason"])


async def subscription_doc(
    db: AsyncDatabase[Doc], tenant_id: str, session: AsyncClientSession | None = None
) -> Doc | None:
    """The tenant's subscription document, read in `session`, or None."""
    return await db[SUBSCRIPTIONS].find_one({"_id": tenant_id}, session=session)


async def subscribed(
    db: AsyncDatabase[Doc], tenant_id: str, session: AsyncClientSession | None = None
) -> bool:
    """Whether the tenant has an active subscription (read in `session`)."""
    return await db[SUBSCRIPTIONS].find_one({"_id": tenant_id, "status": "active"},
                                            projection={"_id": 1}, session=session) is not None


async def save_subscription(db: AsyncDatabase[Doc], doc: Doc, session: AsyncClientSession) -> None:
    """Write the whole subscription document (created or replaced) in `session`."""
    await db[SUBSCRIPTIONS].replace_one({"_id": doc["_id"]}, doc, upsert=True, session=session)


async def subscriptions_to_roll(db: AsyncDatabase[Doc], as_of: datetime) -> list[str]:
    """Tenant ids of active subscriptions whose current window ended at or before `as_of`."""
    docs = db[SUBSCRIPTIONS].find({"status": "active", "period_end": {"$lte": as_of}},
                                  projection={"_id": 1}).sort("_id", 1)
    return [d["_id"] async for d in docs]


async def mark_invoiced(
    db: AsyncDatabase[Doc], tenant_id: str, end: datetime, session: AsyncClientSession
) -> None:
    """In the issuing transaction of a period ending at `end`: raise the subscription's
    `invoiced_through` to `end` (nothing for a tenant that never subscribed). Writing the
    document the subscription commands write makes the two transactions conflict, so a
    command committing while a period is issued is retried and sees the invoice."""
    await db[SUBSCRIPTIONS].update_one(*invoiced_update(tenant_id, end), session=session)


def invoiced_update(tenant_id: str, end: datetime) -> tuple[Doc, Doc]:
    """(filter, update) raising the tenant's subscription `invoiced_through` to `end`."""
    return {"_id": tenant_id}, {"$max": {"invoiced_through": end}}


def changes_in(doc: Doc | None, period: Period) -> list[PlanChange]:
    """The immediate plan changes of a subscription document inside `period`."""
    return [PlanChange(c["at"], c["old_name"], int(c["old_fee"]), c["new_name"],
                       int(c["new_fee"]))
            for c in (doc or {}).get("changes", []) if period.start <= c["at"] < period.end]


async def record_subscription_refusal(
    db: AsyncDatabase[Doc], command: Event, who: Doc, reason: str, detail: str, at: datetime
) -> None:
    """Audit a refused subscription command in `invoicer_audit`, as the refused configuration
    commands are (one record per event id; `who` the actor, or the payments service)."""
    await db[AUDIT].update_one(
        {"_id": command.event_id},
        {"$setOnInsert": {
            "who": who,
            "what": {"command": type(command).__name__,
                     "tenant_id": getattr(command, "tenant_id", None),
                     "event_id": command.event_id,
                     "plan_code": getattr(command, "plan_code", None)},
            "when": {"submitted_at": command.occurred_at, "refused_at": at},
            "why": {"reason": reason, "detail": detail},
            "decision": "refused",
        }},
        upsert=True,
    )
