"""The billing cycle's part of subscriptions: at each period end of a subscribed tenant, the
scheduled change takes effect (a downgrade becomes a configuration version at that instant;
a cancelled subscription ends) and a fresh `UsageLimitsChanged` is published, so the latest
one always has a window containing the billing clock (docs/plans.md, "Subscriptions").

Idempotent and safe from several processes: each tenant's step runs in one transaction that
re-reads the subscription and moves only a window that has ended (two cycles at once
conflict, and the retried one finds nothing to do).
"""

import logging
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConnectionFailure

from contracts import Plan, SubscriptionChanged
from contracts.base import Event
from contracts.topics import TOPIC_TENANT
from services.common.errors import RetryableError
from services.invoicer.adapters.billing_errors import BILLING_ERRORS_TOTAL
from services.invoicer.adapters.store import InvoicerStore, tenant_config
from services.invoicer.adapters.subscriptions import (
    save_subscription,
    subscription_doc,
    subscriptions_to_roll,
)
from services.invoicer.subscription_windows import limits_event, write_version
from services.invoicer.subscriptions import plan_config

log = logging.getLogger(__name__)


async def roll_subscriptions(store: InvoicerStore, as_of: datetime) -> list[str]:
    """Move every active subscription whose current window ended at or before `as_of` to the
    window containing `as_of`, applying what was scheduled at each period end passed; returns
    the tenant ids moved. One tenant that cannot be moved is logged and counted
    (`billing_invoicer_billing_errors_total{reason="subscription_rollover_failed"}`) and the
    others still move; only a lost database connection propagates."""
    moved: list[str] = []
    for tenant_id in await subscriptions_to_roll(store.db, as_of):

        async def txn(session: AsyncClientSession, tenant_id: str = tenant_id) -> bool:
            return await roll_one(store, tenant_id, as_of, session)

        try:
            if await store.transaction(txn):
                moved.append(tenant_id)
        except (ConnectionFailure, RetryableError):  # the database is unavailable
            raise
        except Exception:  # one tenant's subscription must not stop the cycle
            BILLING_ERRORS_TOTAL.labels(reason="subscription_rollover_failed").inc()
            log.exception("subscription of %s not moved on (tried again next run)", tenant_id,
                          extra={"tenant_id": tenant_id})
    return moved


async def roll_one(store: InvoicerStore, tenant_id: str, as_of: datetime,
                   session: AsyncClientSession) -> bool:
    """In `session`: move the tenant's active subscription past every window that ended at or
    before `as_of`, applying what was scheduled at each end and queueing the facts; False when
    there was nothing to move."""
    sub = await subscription_doc(store.db, tenant_id, session)
    if sub is None or sub["status"] != "active" or sub["period_end"] > as_of:
        return False
    while sub["status"] == "active" and sub["period_end"] <= as_of:
        end: datetime = sub["period_end"]
        change = None
        if sub.get("cancel_at_period_end"):
            sub.update(status="canceled", ended_at=end, cancel_at_period_end=False)
            change = "ended"
        elif sub.get("scheduled") and sub["scheduled"]["at"] <= end:
            change = "started" if sub.pop("start_pending", False) else "downgraded"
            await _downgrade(store, sub, end, session)
        limits = await limits_event(store, sub, end, session)
        entries: list[tuple[Event, str, str]] = [(limits, TOPIC_TENANT, tenant_id)]
        if change is not None:
            plan = Plan.model_validate(sub["plan"])
            entries.insert(0, (SubscriptionChanged(
                event_id=f"subscription-changed:{tenant_id}:{change}:{end.isoformat()}",
                occurred_at=end, tenant_id=tenant_id, change=change,
                status=sub["status"], plan_code=plan.code,
                plan_version=int(sub["plan_version"]), effective_at=end), TOPIC_TENANT,
                tenant_id))
            log.info("subscription %s at %s", change, end, extra={"tenant_id": tenant_id})
        await store.add_outbox(entries, session)
    await save_subscription(store.db, sub, session)
    return True


async def _downgrade(store: InvoicerStore, sub: dict[str, object], end: datetime,
                     session: AsyncClientSession) -> None:
    scheduled = sub["scheduled"]
    assert isinstance(scheduled, dict)
    plan = Plan.model_validate(scheduled["plan"])
    tenant_id = str(sub["_id"])
    tenant = await store.tenant(tenant_id, session)
    assert tenant is not None
    base = tenant_config(tenant)
    if base.settings.currency != plan.currency:  # a start in another currency: raw amounts
        base = base.model_copy(update={"coupon": None, "credits": ()})
    config = plan_config(plan, tenant_id=tenant_id, at=end,
                         event_id=f"subscription-scheduled:{tenant_id}:{end.isoformat()}",
                         actor=base.actor, base=base, billing_email=None, tenant_name=None,
                         timezone=None)
    await write_version(store, config, session, scheduled=True)
    sub.update(plan=scheduled["plan"], plan_version=scheduled["plan_version"], scheduled=None)
