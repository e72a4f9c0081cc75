"""Usage estimates and the usage reconciliation, priced and read exactly as the invoicer
prices and reads a period (docs/api-endpoints.md, "Usage" and "Dashboard").

The estimate of an interval prices each meter's total over it with the configuration in force
at its end, through the same functions an invoice's usage lines go through
(`late_usage.meter_totals`, `pricing.usage_line`): for an interval that is exactly an
invoiced period, each meter's estimated cost equals the invoice's usage line for that meter.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.common.meters import meter_of
from services.invoicer.adapters.invoice_store import billable
from services.invoicer.adapters.store import BILLED, INVOICES, TENANTS
from services.invoicer.adapters.subscriptions import changes_in, subscription_doc
from services.invoicer.adapters.usage import CollectorUsage
from services.invoicer.late_usage import meter_totals
from services.invoicer.periods import Period
from services.invoicer.pricing import usage_line
from services.invoicer.proration import flat_fee
from services.invoicer.reports import billing_error_rows, dashboard
from services.invoicer.subscriptions import proration_lines
from services.invoicer.versions import iter_chain
from services.invoicer.views import store_of
from services.usage_collector.api import newest_hour

Doc = dict[str, Any]
Db = AsyncDatabase[Doc]
async def current_period(db: Db, tenant_id: str, at: datetime) -> Period | None:
    """The tenant's billing period containing instant `at` on its period chain (continuing
    from the last invoiced period), or None for an unknown tenant or an `at` before the
    chain's next uninvoiced period starts, or one after a cancelled subscription's end."""
    store = store_of(db)
    tenant = await store.tenant(tenant_id)
    if tenant is None:
        return None
    versions, start = await store.schedule_of(tenant)
    if at < start:
        return None
    for period in iter_chain(versions, start):
        if period.end > at:  # none after a cancelled subscription's end
            return period if billable(tenant, start, period.start) else None
    return None  # pragma: no cover - iter_chain is endless


async def usage_estimate(db: Db, tenant_id: str, start: datetime, end: datetime,
                         now: datetime) -> Doc | None:
    """The tenant's usage in [start, end) priced with the configuration in force at `end`
    (None for an unknown tenant):

    - `meters`: one row per meter with usage or a price: `meter`, `unit`, `quantity`
      (Decimal, the total over every service), `estimated_cost` (minor units, the invoice's
      usage line for that quantity; 0 for an unpriced meter), `priced`, and `services`
      (`service`, `quantity`, `events`), the meter's usage per service;
    - `estimated_total`: the sum of the meters' estimated costs (usage charges only: no flat
      fee, coupon, credit or late-usage adjustment);
    - `flat_fee`: the flat fee of the period containing `now` (`amount`, `period_start`,
      `period_end`, `prorated`), or None; after a subscription's upgrade in that period,
      with its proration lines included (docs/plans.md, "Proration");
    - `as_of`: the start of the newest hour with aggregated usage before `end`, or None;
    - `currency`, `config_version`.
    """
    store = store_of(db)
    version = await store.config_in_force(tenant_id, end)
    if version is None:
        return None
    config = version.command
    currency = config.settings.currency
    found = await CollectorUsage(db).totals(tenant_id, start, end)
    by_meter = meter_totals(found)
    per_service: dict[str, list[Doc]] = {}
    for total in found:
        per_service.setdefault(total.meter, []).append(
            {"service": total.service, "quantity": total.quantity, "events": total.events})
    charges = {c.meter: c for c in config.price_plan.charges}
    rows = []
    for meter in sorted(set(charges) | set(by_meter)):
        quantity = by_meter.get(meter, Decimal(0))
        charge = charges.get(meter)
        cost = usage_line(charge, quantity, currency).amount if charge is not None else 0
        rows.append({"meter": meter, "unit": meter_of(meter).unit, "quantity": quantity,
                     "estimated_cost": cost, "priced": charge is not None,
                     "services": per_service.get(meter, [])})
    period = await current_period(db, tenant_id, now)
    fee = None
    if period is not None:
        in_period = await store.config_in_force(tenant_id, period.end)
        amount = (in_period or version).command.settings.flat_rate_amount
        changes = changes_in(await subscription_doc(db, tenant_id), period)  # upgrades
        priced = flat_fee(changes[0].old_fee if changes else amount, period)
        prorated = sum(li.amount for li in proration_lines(period, changes))
        fee = {"amount": priced.amount + prorated, "period_start": period.start,
               "period_end": period.end, "prorated": priced.prorated or bool(changes)}
    return {
        "tenant_id": tenant_id, "currency": currency, "config_version": version.number,
        "start": start, "end": end, "as_of": await newest_hour(db, tenant_id, end),
        "meters": rows, "estimated_total": sum(r["estimated_cost"] for r in rows),
        "flat_fee": fee,
    }


async def reconcile(db: Db, tenant_id: str, period: Period) -> Doc:
    """Where the tenant's usage of `period` stands between the collector and the invoice:
    `events_aggregated` (events in the period's buckets), `quantity_aggregated` and
    `quantity_billed` per meter (Decimal; billed = what the period's invoice billed, empty
    before it is issued)."""
    totals = await CollectorUsage(db).totals(tenant_id, period.start, period.end)
    billed = db[BILLED].find({"tenant_id": tenant_id, "period_start": period.start})
    return {
        "period_start": period.start, "period_end": period.end,
        "events_aggregated": sum(t.events for t in totals),
        "quantity_aggregated": meter_totals(totals),
        "quantity_billed": {d["meter"]: d["quantity"] async for d in billed},
    }


async def reconciliation(db: Db, at: datetime) -> list[Doc]:
    """Per tenant (by id): `reconcile` of its period containing `at` (`current`, None when
    there is none) and of its last invoiced period (`last_invoiced`, None before the first
    invoice)."""
    rows = []
    async for tenant in db[TENANTS].find({}, projection={"_id": 1}).sort("_id", 1):
        tenant_id = tenant["_id"]
        period = await current_period(db, tenant_id, at)
        last = await db[INVOICES].find_one(
            {"tenant_id": tenant_id}, sort=[("period_start", -1)])
        last_view = None
        if last is not None:
            last_period = Period(last["period_start"], last["period_end"],
                                 last["period_start"].date(), last["period_end"].date())
            last_view = {"invoice_number": last["invoice_number"],
                         **await reconcile(db, tenant_id, last_period)}
        rows.append({"tenant_id": tenant_id,
                     "current": await reconcile(db, tenant_id, period) if period else None,
                     "last_invoiced": last_view})
    return rows


async def dashboard_view(db: Db, at: datetime) -> Doc:
    """The operators' dashboard at instant `at`: `reports.dashboard` (`total_tenants`,
    `pending_invoices`, `overdue_invoices`, `monthly_revenue` per currency of `at`'s UTC month,
    `month`, `billing_errors` count), `open_billing_errors` (`reports.billing_error_rows`) and
    `reconciliation` (see `reconciliation`)."""
    store = store_of(db)
    view = await dashboard(store, at)
    view["open_billing_errors"] = await billing_error_rows(store)
    view["reconciliation"] = await reconciliation(db, at)
    return view
