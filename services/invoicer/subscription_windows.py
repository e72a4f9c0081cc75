"""A subscribed tenant's billing periods as limit windows, and the configuration versions a
subscription writes (docs/plans.md, "Subscriptions"; docs/limits.md).

`UsageLimitsChanged` carries the window of the current period (the limits of the plan the
tenant is on now: an upgrade's limits apply from its instant) and the next period's (the
limits of a scheduled change, if any; none when the subscription ends at the current period's
end; no window at all once it has ended). `version` is the subscription's own counter.
"""

from datetime import datetime, timedelta

from pymongo.asynchronous.client_session import AsyncClientSession

from contracts import BillingConfigSubmitted, Plan, UsageLimitsChanged, UsageLimitWindow
from contracts.base import utc_now
from contracts.config import BillingConfigApplied
from contracts.topics import TOPIC_TENANT
from services.invoicer.adapters.invoice_store import resumed
from services.invoicer.adapters.store import CONFIGS, InvoicerStore, config_key, tenant_config
from services.invoicer.adapters.subscriptions import Doc
from services.invoicer.periods import Period
from services.invoicer.subscriptions import plan_config
from services.invoicer.versions import ConfigVersion, chain_start, iter_chain

_INSTANT = timedelta(microseconds=1)


async def first_uninvoiced(
    store: InvoicerStore, tenant_id: str, session: AsyncClientSession
) -> datetime:
    """Where the tenant's first period not yet invoiced starts (after the gap of an ended
    subscription, where billing resumed)."""
    versions = await store.config_versions(tenant_id, session)
    last_end = await store.last_invoiced_end(tenant_id, session)
    tenant = await store.tenant(tenant_id, session)
    return resumed(tenant or {}, last_end if last_end is not None else chain_start(versions))


async def current_period(
    store: InvoicerStore, tenant_id: str, at: datetime, session: AsyncClientSession,
    extra: ConfigVersion | None = None,
) -> Period:
    """The tenant's period of the chain containing instant `at`, with `extra` (a scheduled
    version not yet written) counted. When `at` is before the first uninvoiced period: the
    last invoiced period when it contains `at` (a late command: its successor is not
    invoiced yet), else the first uninvoiced one (docs/plans.md, "Late commands")."""
    versions = await store.config_versions(tenant_id, session)
    versions += [extra] if extra is not None else []
    last_end = await store.last_invoiced_end(tenant_id, session)
    if last_end is not None and at < last_end:
        found = await store.invoices_overlapping(tenant_id, at, at + _INSTANT, session)
        if found and found[0]["period_end"] == last_end:
            return next(iter_chain(versions, found[0]["period_start"]))
    start = last_end if last_end is not None else chain_start(versions)
    tenant = await store.tenant(tenant_id, session)
    start = resumed(tenant or {}, start)
    for period in iter_chain(versions, start):
        if period.end > at:
            return period
    raise AssertionError("unreachable: the chain is endless")  # pragma: no cover


async def write_version(
    store: InvoicerStore, command: BillingConfigSubmitted, session: AsyncClientSession,
    *, scheduled: bool = False,
) -> int:
    """Record `command` as the tenant's next configuration version (a `scheduled` one prices
    no period that ends at its instant: `versions.in_force`), with its `BillingConfigApplied`
    in the outbox, as an operator's version is; returns the version number."""
    tenant = await store.tenant(command.tenant_id, session)
    version = int((tenant or {}).get("version", 0)) + 1
    now = utc_now()
    await store.add_config_version(command, version, now, session)
    if scheduled:
        await store.db[CONFIGS].update_one({"_id": config_key(command.tenant_id, version)},
                                           {"$set": {"scheduled": True}}, session=session)
    applied = BillingConfigApplied(
        event_id=f"config-applied:{command.tenant_id}:{version}", occurred_at=now,
        tenant_id=command.tenant_id, config_version=version, submitted_at=command.occurred_at,
        billing_email=command.settings.billing_email,
        email_notifications=command.settings.email_notifications)
    await store.add_outbox([(applied, TOPIC_TENANT, command.tenant_id)], session)
    return version


def _window(period: Period, plan: Plan) -> UsageLimitWindow:
    return UsageLimitWindow(period_start=period.start, period_end=period.end,
                            limits=plan.limits)


async def limits_event(
    store: InvoicerStore, sub: Doc, at: datetime, session: AsyncClientSession
) -> UsageLimitsChanged:
    """The next `UsageLimitsChanged` of subscription `sub` as of instant `at`; updates `sub`
    in place (its `limits_version` and its current window `period_start`/`period_end`, both
    None once it has ended). The caller saves `sub` in the same transaction."""
    tenant_id = sub["_id"]
    sub["limits_version"] = int(sub.get("limits_version", 0)) + 1
    windows: list[UsageLimitWindow] = []
    if sub["status"] == "active":
        period = await current_period(store, tenant_id, at, session)
        windows.append(_window(period, Plan.model_validate(sub["plan"])))
        sub.update(period_start=period.start, period_end=period.end)
        if not sub.get("cancel_at_period_end"):
            scheduled = sub.get("scheduled")
            plan = Plan.model_validate(scheduled["plan"] if scheduled else sub["plan"])
            extra = None
            if scheduled:
                tenant = await store.tenant(tenant_id, session)
                assert tenant is not None
                config = plan_config(plan, tenant_id=tenant_id, at=period.end,
                                     event_id="scheduled", actor=tenant_config(tenant).actor,
                                     base=tenant_config(tenant), billing_email=None,
                                     tenant_name=None, timezone=None)
                extra = ConfigVersion(int(tenant["version"]) + 1, config, scheduled=True)
            following = await current_period(store, tenant_id, period.end, session, extra)
            windows.append(_window(following, plan))
    else:
        sub.update(period_start=None, period_end=None)
    return UsageLimitsChanged(
        event_id=f"usage-limits:{tenant_id}:{sub['limits_version']}", occurred_at=at,
        tenant_id=tenant_id, version=sub["limits_version"], windows=tuple(windows))


async def pending_start(
    store: InvoicerStore, tenant_id: str, at: datetime, sub: Doc | None, plan: Plan,
    version: int, session: AsyncClientSession,
) -> tuple[Doc, datetime]:
    """The subscription document of a start at instant `at` on a tenant billed without a
    subscription on another billing frequency or in another currency, and the end of the
    current period: the plan's pricing is scheduled for that end (no proration across grids
    or currencies; another currency drops the coupon and credits then); the subscription and its
    limits start at once (docs/plans.md, "Subscriptions")."""
    end = (await current_period(store, tenant_id, at, session)).end
    dumped = plan.model_dump(mode="json")
    doc: Doc = {
        "_id": tenant_id, "status": "active", "plan": dumped, "plan_version": version,
        "started_at": at, "cancel_at_period_end": False, "start_pending": True,
        "scheduled": {"plan": dumped, "plan_version": version, "at": end}, "ended_at": None,
        "limits_version": int((sub or {}).get("limits_version", 0)),
        "changes": list((sub or {}).get("changes", [])),
    }
    return doc, end
