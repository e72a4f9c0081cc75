"""The billing cycle: issue every due invoice exactly once and mark unpaid ones overdue.

Exactly once, however many invoicer processes run it: the invoice id is deterministic per
tenant and period (unique `_id`, unique tenant+period index); the invoice number is allocated
from the year's counter document inside the same transaction as the invoice insert, its
`InvoiceIssued` outbox entry and the tenant's ledger update. Concurrent transactions conflict
on the counter and the ledger, and an aborted transaction consumes no number, so numbers stay
gapless. A crash after the commit loses nothing: the outbox relay publishes the event later.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConnectionFailure, DuplicateKeyError

from contracts import TOPIC_INVOICE, BillingConfigSubmitted, PriceCharge
from contracts.base import utc_now
from services.common.outbox import add_to_outbox
from services.invoicer.adapters.billing_errors import (
    IssueContention,
    record_billing_error,
    resolve_billing_error,
)
from services.invoicer.adapters.store import OUTBOX, InvoicerStore, tenant_config
from services.invoicer.domain import invoice_id, invoice_number
from services.invoicer.periods import Period, due_date, overdue_at, periods_until
from services.invoicer.pricing import (
    Adjustment,
    CreditBalance,
    charge_exact,
    compose_invoice,
    round_minor,
)
from services.invoicer.records import issued_event, line_doc
from services.usage_collector.query import usage_totals

log = logging.getLogger(__name__)
#: Usage buckets changed this long before an invoice was priced are re-read for adjustments.
LATE_USAGE_MARGIN = timedelta(minutes=1)
Doc = dict[str, Any]


class LedgerMoved(RuntimeError):
    """The tenant's ledger changed between reading and writing it (retried)."""


@dataclass
class CycleReport:
    """What one cycle run did: invoice numbers issued, invoice ids marked overdue, and the
    invoice ids of periods that could not be issued (recorded as billing errors)."""

    issued: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def tenant_periods(config: BillingConfigSubmitted, until: datetime) -> list[Period]:
    """The tenant's periods that ended at or before `until`."""
    s = config.settings
    return periods_until(config.effective_from, s.billing_frequency, s.billing_day_of_month,
                         config.timezone, until)


async def usage_by_meter(
    store: InvoicerStore, tenant_id: str, start: datetime, end: datetime
) -> dict[str, Decimal]:
    """Each meter's total over [start, end), summed over the tenant's services."""
    totals: dict[str, Decimal] = {}
    for t in await usage_totals(store.db, tenant_id, start, end):
        totals[t.meter] = totals.get(t.meter, Decimal(0)) + t.quantity
    return totals


async def late_usage(
    store: InvoicerStore, tenant_id: str, before: datetime, currency: str
) -> tuple[list[Adjustment], list[Doc]]:
    """Adjustments for usage that changed after earlier periods were invoiced, with the billed
    records they supersede. Only periods whose buckets changed since pricing are re-read."""
    billed = await self_billed(store, tenant_id, before)
    adjustments: list[Adjustment] = []
    touched: list[Doc] = []
    by_period: dict[datetime, list[Doc]] = {}
    for doc in billed:
        by_period.setdefault(doc["period_start"], []).append(doc)
    for start, docs in sorted(by_period.items()):
        end, priced_at = docs[0]["period_end"], min(d["priced_at"] for d in docs)
        changed = await store.db["usage_aggregates"].find_one(
            {"tenant_id": tenant_id, "hour": {"$gte": start, "$lt": end},
             "updated_at": {"$gte": priced_at - LATE_USAGE_MARGIN}}, projection={"_id": 1}
        )
        if changed is None:
            continue
        usage = await usage_by_meter(store, tenant_id, start, end)
        for doc in docs:
            charge = PriceCharge.model_validate(doc["charge"])
            quantity = usage.get(doc["meter"], Decimal(0))
            amount = round_minor(charge_exact(charge, quantity), currency)
            if quantity == doc["quantity"] and amount == doc["amount"]:
                continue
            adjustments.append(Adjustment(
                meter=doc["meter"], period_label=doc["period_label"],
                quantity_delta=quantity - Decimal(doc["quantity"]),
                amount_delta=amount - int(doc["amount"]),
                unit_price=charge.unit_price if charge.model == "per_unit" else None,
            ))
            touched.append({**doc, "new_quantity": quantity})
    return adjustments, touched


async def self_billed(store: InvoicerStore, tenant_id: str, before: datetime) -> list[Doc]:
    """Billed-usage records of periods that ended at or before `before`."""
    query = {"tenant_id": tenant_id, "period_end": {"$lte": before}}
    return await store.billed.find(query).sort("period_start", ASCENDING).to_list()


async def issue_invoice(store: InvoicerStore, tenant_id: str, period: Period) -> str | None:
    """Issue the invoice of `tenant_id` for `period` unless it exists; returns the new invoice
    number, or None when it was already issued (by this or another process)."""
    inv_id = invoice_id(tenant_id, period.start_date)
    if await store.invoices.find_one({"_id": inv_id}, projection={"_id": 1}):
        return None
    tenant = await store.tenant(tenant_id)
    if tenant is None:
        raise LookupError(f"tenant {tenant_id!r} has no billing configuration")
    currency = tenant_config(tenant).settings.currency
    priced_at = utc_now()
    usage = await usage_by_meter(store, tenant_id, period.start, period.end)
    adjustments, superseded = await late_usage(store, tenant_id, period.start, currency)
    year = period.end_date.year
    await store.ensure_counter(f"invoice-number:{year}")

    async def txn(session: AsyncClientSession) -> str | None:
        if await store.invoices.find_one({"_id": inv_id}, projection={"_id": 1}, session=session):
            return None
        t = await store.tenant(tenant_id, session)
        assert t is not None
        config = tenant_config(t)
        s = config.settings
        coupons = {c["code"]: c["redemptions"] for c in t.get("coupons", [])}
        used = {c["credit_id"]: c["used"] for c in t.get("credits_used", [])}
        credits = [CreditBalance(c.credit_id, c.amount - used.get(c.credit_id, 0), c.granted_at,
                                 c.reason) for c in config.credits]
        draft = compose_invoice(
            currency=s.currency, flat_rate_amount=s.flat_rate_amount,
            charges=config.price_plan.charges, usage=usage, adjustments=adjustments,
            coupon=config.coupon,
            coupon_redemptions=coupons.get(config.coupon.code, 0) if config.coupon else 0,
            credits=credits, issued_at=period.end,
        )
        counter = await store.counters.find_one_and_update(
            {"_id": f"invoice-number:{year}"}, {"$inc": {"seq": 1}}, session=session,
            return_document=True,
        )
        assert counter is not None, "the counter document is created before the transaction"
        number = invoice_number(year, counter["seq"])
        due = due_date(period.end_date, s.payment_due_days)
        doc: Doc = {
            "_id": inv_id, "invoice_number": number, "tenant_id": tenant_id,
            "tenant_name": config.tenant_name, "currency": s.currency, "amount": draft.total,
            "status": "pending_payment", "issue_date": period.end_date.isoformat(),
            "due_date": due.isoformat(), "paid_date": None, "payment_reference": None,
            "payment_method": None, "period_start": period.start, "period_end": period.end,
            "timezone": config.timezone, "issued_at": period.end,
            "overdue_at": overdue_at(due, config.timezone),
            "line_items": [line_doc(li) for li in draft.lines],
            "usage": [{"meter": m, "quantity": q} for m, q in sorted(usage.items())],
            "config_version": t["version"], "billing_email": s.billing_email,
            "email_notifications": s.email_notifications, "created_at": utc_now(),
            "history": [{"status": "pending_payment", "at": period.end, "cause": "issued"}],
        }
        await store.invoices.insert_one(doc, session=session)
        await _record_billed(store, session, tenant_id, period, config, usage, doc, priced_at,
                             superseded, draft.lines)
        if draft.coupon_applied and config.coupon is not None:
            coupons[config.coupon.code] = coupons.get(config.coupon.code, 0) + 1
        for credit_id, take in draft.credits_used.items():
            used[credit_id] = used.get(credit_id, 0) + take
        result = await store.tenants.update_one(
            {"_id": tenant_id, "ledger_rev": t["ledger_rev"]},
            {"$inc": {"ledger_rev": 1, "invoices": 1},
             "$set": {"coupons": [{"code": k, "redemptions": v} for k, v in coupons.items()],
                      "credits_used": [{"credit_id": k, "used": v} for k, v in used.items()],
                      "last_period_end": period.end}},
            session=session,
        )
        if result.modified_count != 1:
            raise LedgerMoved(tenant_id)  # aborts the transaction: nothing is written
        await add_to_outbox(store.db, OUTBOX, [(issued_event(doc), TOPIC_INVOICE, tenant_id)],
                            session)
        await resolve_billing_error(store.db, inv_id, number, session)
        return number

    for _ in range(10):
        try:
            number = await store.transaction(txn)
            break
        except DuplicateKeyError:
            return None  # another process issued it first; its transaction kept the number
        except LedgerMoved:
            continue  # another invoice of this tenant committed meanwhile: price again
    else:
        raise IssueContention(f"could not issue {inv_id}: the tenant ledger kept changing")
    if number is not None:
        log.info("issued %s", number, extra={"tenant_id": tenant_id, "invoice_number": number})
    return number


async def issue_isolated(
    store: InvoicerStore, tenant_id: str, period: Period, report: CycleReport, waiting: int = 0
) -> bool:
    """`issue_invoice`, with any failure of this one (tenant, period) contained: it is logged
    (tenant and period), counted in `billing_invoicer_billing_errors_total` and recorded as an
    open billing error (`waiting` = the tenant's later due periods held back behind it), and
    its invoice id is added to `report.failed`; a new number goes to `report.issued`.

    Returns False when the period failed. Only a lost database connection propagates (nothing
    could be recorded then). Rules: docs/invoicing.md, "One period that cannot be priced".
    """
    try:
        number = await issue_invoice(store, tenant_id, period)
    except ConnectionFailure:
        raise
    except Exception as exc:
        reason = await record_billing_error(store.db, tenant_id, period, exc, waiting)
        log.warning(
            "invoice of tenant %s for the period %s..%s not issued (%s): %s", tenant_id,
            period.start_date, period.end_date, reason, exc,
            extra={"tenant_id": tenant_id, "period_start": period.start_date.isoformat(),
                   "period_end": period.end_date.isoformat(), "reason": reason},
        )
        report.failed.append(invoice_id(tenant_id, period.start_date))
        return False
    if number is not None:
        report.issued.append(number)
    return True


async def _record_billed(
    store: InvoicerStore, session: AsyncClientSession, tenant_id: str, period: Period,
    config: BillingConfigSubmitted, usage: dict[str, Decimal], doc: Doc, priced_at: datetime,
    superseded: list[Doc], lines: Any,
) -> None:
    label = f"{period.start_date.isoformat()}..{period.end_date.isoformat()}"
    amounts = {li.meter: li.amount for li in lines if li.kind == "usage"}
    for charge in config.price_plan.charges:
        await store.billed.insert_one({
            "_id": f"{tenant_id}|{period.start.isoformat()}|{charge.meter}",
            "tenant_id": tenant_id, "meter": charge.meter, "period_start": period.start,
            "period_end": period.end, "period_label": label, "invoice_id": doc["_id"],
            "charge": charge.model_dump(mode="json"), "priced_at": priced_at,
            "quantity": usage.get(charge.meter, Decimal(0)), "amount": amounts[charge.meter],
        }, session=session)
    applied = {(li.meter, li.ref): li.amount for li in lines if li.kind == "adjustment"}
    for old in superseded:
        key = (old["meter"], old["period_label"])
        if key not in applied:
            continue
        await store.billed.update_one(
            {"_id": old["_id"]},
            {"$set": {"quantity": old["new_quantity"], "priced_at": priced_at},
             "$inc": {"amount": applied[key]},
             "$push": {"adjusted_by": doc["_id"]}},
            session=session,
        )
