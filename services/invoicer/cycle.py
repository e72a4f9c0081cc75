"""The billing cycle: issue every due invoice exactly once and mark unpaid ones overdue.

Exactly once, however many invoicer processes run it: the invoice id is deterministic per
tenant and period (unique `_id`, unique tenant+period index); the invoice number is allocated
from the year's counter document inside the same transaction as the invoice insert, its
`InvoiceIssued` outbox entry and the tenant's ledger update. Concurrent transactions conflict
on the counter and the ledger, and an aborted transaction consumes no number, so numbers stay
gapless. A crash after the commit loses nothing: the outbox relay publishes the event later.

Everything an invoice depends on is read again by every attempt of its transaction: the
tenant's configuration and ledger, the billed records of earlier periods and the coupon's
redemption count (in the transaction's snapshot, each write guarded by the version read), and
the usage (through the collector's read API, after its marker). Nothing is carried over from
an aborted attempt (docs/invoicing.md, "Two issuances at once").
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConnectionFailure, DuplicateKeyError

from contracts import TOPIC_INVOICE, BillingConfigSubmitted
from contracts.base import utc_now
from contracts.invoices import InvoiceStatus
from services.common.outbox import add_to_outbox
from services.invoicer.adapters.billing_errors import (
    IssueContention,
    record_billing_error,
    resolve_billing_error,
)
from services.invoicer.adapters.store import InvoicerStore, tenant_config
from services.invoicer.domain import invoice_id, invoice_number
from services.invoicer.late_usage import BilledMoved, late_usage, supersede, usage_by_meter
from services.invoicer.ledger import (
    Ledger,
    LedgerMoved,
    code_redemptions,
    ensure_coupon_count,
    take_redemption,
)
from services.invoicer.names import OUTBOX
from services.invoicer.periods import Period, due_date, overdue_at, periods_until
from services.invoicer.pricing import Line, compose_invoice
from services.invoicer.proration import describe_flat_fee, flat_fee
from services.invoicer.records import issued_event, line_doc

log = logging.getLogger(__name__)
Doc = dict[str, Any]
#: Attempts of one issue whose transaction found its ledger or billed records moved.
ISSUE_ATTEMPTS = 10


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


async def issue_invoice(store: InvoicerStore, tenant_id: str, period: Period) -> str | None:
    """Issue the invoice of `tenant_id` for `period` unless it exists; returns the new invoice
    number, or None when it was already issued (by this or another process).

    The configuration version in force at the period's end prices it, a stub pays its
    prorated flat fee, and a period overlapping an invoice is not issued (None)
    (docs/billing-periods.md).

    One transaction: invoice, billed records, superseded billed records (late usage), coupon
    redemption count, tenant ledger, outbox entry, and the resolution of a billing error of
    this period. Raises `LookupError` (no configuration), decimal errors or
    `AmountOutOfRange` (cannot be priced: nothing is written), `IssueContention` when the
    ledger kept moving for `ISSUE_ATTEMPTS` attempts.
    """
    inv_id = invoice_id(tenant_id, period.start_date)
    if await store.invoices.find_one({"_id": inv_id}, projection={"_id": 1}):
        return None
    year = period.end_date.year

    async def txn(session: AsyncClientSession) -> str | None:
        if await store.invoices.find_one({"_id": inv_id}, projection={"_id": 1}, session=session):
            return None
        t = await store.tenant(tenant_id, session)
        if t is None:
            raise LookupError(f"tenant {tenant_id!r} has no billing configuration")
        if await store.invoices_overlapping(tenant_id, period.start, period.end, session):
            log.warning("period %s..%s of %s overlaps an invoice: not issued", period.start,
                        period.end, tenant_id, extra={"tenant_id": tenant_id})
            return None  # never bill a stretch twice (docs/billing-periods.md)
        version = await store.config_in_force(tenant_id, period.end, session)
        config = version.command if version is not None else tenant_config(t)
        s = config.settings
        fee = flat_fee(s.flat_rate_amount, period)
        ledger = Ledger.of(t)
        priced_at = utc_now()
        marker = await store.usage.marker(tenant_id)  # before any usage is read
        usage = await usage_by_meter(store.usage, tenant_id, period.start, period.end)
        adjustments, superseded = await late_usage(store, session, tenant_id, period.start,
                                                   s.currency)
        coupon = config.coupon
        uses = ledger.coupon_uses.get(coupon.code, 0) if coupon else 0
        taken = await code_redemptions(store.db, coupon.code, session) if coupon else 0
        draft = compose_invoice(
            currency=s.currency, flat_rate_amount=fee.amount,
            charges=config.price_plan.charges, usage=usage, adjustments=adjustments,
            coupon=coupon, coupon_redemptions=uses, credits=ledger.credits(config),
            issued_at=period.end, code_redemptions=taken,
        )
        draft = describe_flat_fee(draft, fee)
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
            "status": InvoiceStatus.pending_payment, "issue_date": period.end_date.isoformat(),
            "due_date": due.isoformat(), "paid_date": None, "payment_reference": None,
            "payment_method": None, "period_start": period.start, "period_end": period.end,
            "timezone": config.timezone, "issued_at": period.end,
            "overdue_at": overdue_at(due, config.timezone),
            "line_items": [line_doc(li) for li in draft.lines],
            "usage": [{"meter": m, "quantity": q} for m, q in sorted(usage.items())],
            "config_version": version.number if version else t["version"],
            "billing_email": s.billing_email,
            "email_notifications": s.email_notifications, "created_at": utc_now(),
            "history": [{"status": InvoiceStatus.pending_payment, "at": period.end,
                         "cause": "issued"}],
        }
        await store.invoices.insert_one(doc, session=session)
        await _record_billed(store, session, tenant_id, period, config, usage, doc, priced_at,
                             marker, draft.lines)
        await supersede(store, session, superseded, inv_id, priced_at, marker)
        if draft.coupon_applied and coupon is not None and uses == 0:
            await take_redemption(store.db, coupon.code, tenant_id, taken, session)
        result = await store.tenants.update_one(
            {"_id": tenant_id, "ledger_rev": ledger.rev},
            {"$inc": {"ledger_rev": 1, "invoices": 1},
             "$set": {**ledger.after(draft, coupon, inv_id, number, period.end, s.currency),
                      "last_period_end": period.end}},
            session=session,
        )
        if result.modified_count != 1:
            raise LedgerMoved(tenant_id)  # aborts the transaction: nothing is written
        await add_to_outbox(store.db, OUTBOX, [(issued_event(doc), TOPIC_INVOICE, tenant_id)],
                            session)
        await resolve_billing_error(store.db, inv_id, number, session)
        return number

    for _ in range(ISSUE_ATTEMPTS):
        await _prepare(store, tenant_id, year)
        try:
            number = await store.transaction(txn)
            break
        except DuplicateKeyError:
            if await store.invoices.find_one({"_id": inv_id}, projection={"_id": 1}):
                return None  # another process issued it first; its transaction kept the number
            raise  # some other duplicate: never mistaken for "already issued"
        except (LedgerMoved, BilledMoved):
            continue  # another invoice of this tenant committed meanwhile: price again
    else:
        raise IssueContention(f"could not issue {inv_id}: the tenant ledger kept changing")
    if number is not None:
        log.info("issued %s", number, extra={"tenant_id": tenant_id, "invoice_number": number})
    return number


async def _prepare(store: InvoicerStore, tenant_id: str, year: int) -> None:
    """Create, outside the transaction, the documents it only `$inc`s: the year's invoice
    counter and the redemption count of the tenant's coupon code."""
    await store.ensure_counter(f"invoice-number:{year}")
    tenant = await store.tenant(tenant_id)
    if tenant is None:
        raise LookupError(f"tenant {tenant_id!r} has no billing configuration")
    coupons = {v.command.coupon.code for v in await store.config_versions(tenant_id)
               if v.command.coupon is not None}  # whichever version prices the period
    current = tenant_config(tenant).coupon
    for code in sorted(coupons | ({current.code} if current else set())):
        await ensure_coupon_count(store.db, code)


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
    marker: int, lines: tuple[Line, ...],
) -> None:
    """One billed-usage record per priced meter (schema in `late_usage`), at `rev` 0 with the
    usage `marker` read before the usage."""
    label = f"{period.start_date.isoformat()}..{period.end_date.isoformat()}"
    amounts = {li.meter: li.amount for li in lines if li.kind == "usage"}
    for charge in config.price_plan.charges:
        await store.billed.insert_one({
            "_id": f"{tenant_id}|{period.start.isoformat()}|{charge.meter}",
            "tenant_id": tenant_id, "meter": charge.meter, "period_start": period.start,
            "period_end": period.end, "period_label": label, "invoice_id": doc["_id"],
            "charge": charge.model_dump(mode="json"), "priced_at": priced_at,
            "quantity": usage.get(charge.meter, Decimal(0)), "amount": amounts[charge.meter],
            "currency": config.settings.currency, "usage_marker": marker, "rev": 0,
        }, session=session)
