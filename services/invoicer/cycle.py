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
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConnectionFailure

from contracts import BillingConfigSubmitted
from contracts.base import utc_now
from services.common.errors import RetryableError
from services.invoicer.adapters.ledger import code_redemptions
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.adapters.subscriptions import mark_invoiced, subscription_doc
from services.invoicer.domain import invoice_id
from services.invoicer.issue_pricing import config_for, price_issue
from services.invoicer.late_usage import late_usage, usage_by_meter
from services.invoicer.ledger import Ledger
from services.invoicer.periods import Period, periods_until
from services.invoicer.records import IssueDraft

log = logging.getLogger(__name__)
Doc = dict[str, Any]


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

    The configuration version in force at the period's end prices it (a subscription's
    version scheduled for that end does not), a stub pays its prorated flat fee, a
    subscription's upgrades within it add their proration lines (docs/plans.md), and a
    period overlapping an invoice is not issued (None)
    (docs/billing-periods.md).

    Three steps: `read_and_price` reads inside the issuing transaction and prices the period
    (`proration.price_period`, pure); `records.build_invoice` builds the document; the
    store's `issue` (`InvoiceStore.issue`) owns the transaction, the number and the retry.
    One transaction: invoice, billed records, superseded billed records (late usage), coupon
    redemption count, tenant ledger, outbox entry, and the resolution of a billing error of
    this period. Raises
    `LookupError` (no configuration), decimal errors or `AmountOutOfRange` (cannot be priced:
    nothing is written), `IssueContention` when the ledger kept moving for `ISSUE_ATTEMPTS`
    attempts.
    """
    inv_id = invoice_id(tenant_id, period.start_date)

    async def read(session: AsyncClientSession) -> IssueDraft | None:
        return await read_and_price(store, session, inv_id, tenant_id, period)

    return await store.issue(inv_id, tenant_id, period.end_date.year, read)


async def read_and_price(
    store: InvoicerStore, session: AsyncClientSession, inv_id: str, tenant_id: str,
    period: Period,
) -> IssueDraft | None:
    """Everything the invoice of `period` depends on, read in `session` (configuration in
    force, ledger, overlapping invoices, billed records, coupon count; usage after its
    marker), priced. None when the period overlaps an invoice."""
    t = await store.tenant(tenant_id, session)
    if t is None:
        raise LookupError(f"tenant {tenant_id!r} has no billing configuration")
    if await store.invoices_overlapping(tenant_id, period.start, period.end, session):
        log.warning("period %s..%s of %s overlaps an invoice: not issued", period.start,
                    period.end, tenant_id, extra={"tenant_id": tenant_id})
        return None  # never bill a stretch twice (docs/billing-periods.md)
    versions = await store.config_versions(tenant_id, session)
    config, config_version = config_for(t, versions, period)
    priced_at = utc_now()
    marker = await store.usage.marker(tenant_id)  # before any usage is read
    usage = await usage_by_meter(store.usage, tenant_id, period.start, period.end)
    adjustments, superseded = await late_usage(store, session, tenant_id, period.start,
                                               config.settings.currency)
    coupon = config.coupon
    taken = await code_redemptions(store.db, coupon.code, session) if coupon else 0
    subscription = await subscription_doc(store.db, tenant_id, session)
    if subscription is not None:  # serialises with the subscription commands
        await mark_invoiced(store.db, tenant_id, period.end, session)
    return price_issue(inv_id, tenant_id, period, config, config_version, Ledger.of(t), usage,
                       marker, priced_at, adjustments, superseded, taken, subscription)


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
    except (ConnectionFailure, RetryableError):  # the database is unavailable
        raise
    except Exception as exc:
        reason = await store.record_billing_error(tenant_id, period, exc, waiting)
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
