"""Read-only views of invoices for operators, tenants and the demo.

The `async def ...(settings, ...)` functions open their own MongoDB client, so the CLI and the
demo can call them directly.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from contracts.base import utc_now
from contracts.invoices import InvoiceStatus
from services.common.mongo import database, make_client
from services.common.settings import CommonSettings
from services.invoicer.adapters import queries
from services.invoicer.adapters.invoice_store import InvoiceStore
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.domain import AWAITING_PAYMENT, UNPAID
from services.invoicer.records import export_row
from services.invoicer.schedule import next_due

Doc = dict[str, Any]
STATUS_FILTERS = {"all": None, "unpaid": list(UNPAID), "paid": [InvoiceStatus.paid]}


@asynccontextmanager
async def open_store(settings: CommonSettings) -> AsyncIterator[InvoicerStore]:
    """An `InvoicerStore` on its own client, closed on exit."""
    client = make_client(settings)
    try:
        yield InvoicerStore(client, database(client, settings))
    finally:
        await client.close()


async def list_invoices(
    store: InvoiceStore, tenant_id: str | None = None, status: str = "all"
) -> list[Doc]:
    """Invoices by number, optionally of one tenant and filtered all | unpaid | paid
    (unpaid = pending_payment, failed or overdue). Raises `ValueError` for another filter."""
    if status not in STATUS_FILTERS:
        raise ValueError(f"status must be one of {sorted(STATUS_FILTERS)}")
    return await store.find_invoices(tenant_id, STATUS_FILTERS[status])


async def find_invoice(store: InvoiceStore, number: str) -> Doc | None:
    """The invoice with `number` (`INV-YYYY-NNNN`) or id, or None."""
    return await store.invoice_by_number(number)


def totals(invoices: list[Doc]) -> Doc:
    """Tenant view: outstanding balance and total paid per currency (minor units),
    overdue count and total invoices. `total_paid` is net of refunds; when there are any,
    `total_refunded` shows them per currency (docs/payments.md "Refunds")."""
    outstanding: dict[str, int] = {}
    paid: dict[str, int] = {}
    refunded: dict[str, int] = {}
    for inv in invoices:
        bucket = paid if inv["status"] == InvoiceStatus.paid else outstanding
        bucket[inv["currency"]] = bucket.get(inv["currency"], 0) + int(inv["amount"])
        back = int(inv.get("refunded_amount") or 0)
        if back:
            refunded[inv["currency"]] = refunded.get(inv["currency"], 0) + back
            if inv["status"] == InvoiceStatus.paid:
                paid[inv["currency"]] -= back
    view: Doc = {
        "outstanding_balance": outstanding,
        "total_paid": paid,
        "overdue_count": sum(1 for i in invoices if i["status"] == InvoiceStatus.overdue),
        "total_invoices": len(invoices),
    }
    if refunded:
        view["total_refunded"] = refunded
    return view


async def dashboard(store: InvoicerStore, as_of: datetime | None = None) -> Doc:
    """Dashboard: `total_tenants`, `pending_invoices` (pending_payment or failed),
    `overdue_invoices`, `monthly_revenue` (minor units per currency, invoices whose paid date
    falls in the month of `as_of`, default now, UTC, net of the refunds made in that month:
    docs/payments.md "Refunds")."""
    month = (as_of or utc_now()).strftime("%Y-%m")
    revenue: dict[str, int] = {}
    for inv in await queries.invoices_in_month(store, "paid_date", month):
        if inv["status"] != InvoiceStatus.paid:
            continue
        revenue[inv["currency"]] = revenue.get(inv["currency"], 0) + int(inv["amount"])
    for inv in await queries.invoices_in_month(store, "refunds.refunded_date", month):
        back = sum(int(r["amount"]) for r in inv["refunds"]
                   if str(r.get("refunded_date", "")).startswith(month))
        revenue[inv["currency"]] = revenue.get(inv["currency"], 0) - back
    return {
        "total_tenants": await queries.count_tenants(store),
        "pending_invoices": await queries.count_invoices(store, AWAITING_PAYMENT),
        "overdue_invoices": await queries.count_invoices(store, [InvoiceStatus.overdue]),
        "monthly_revenue": dict(sorted(revenue.items())),
        "month": month,
        # periods the cycle could not invoice, still open (docs/invoicing.md)
        "billing_errors": await store.count_open_billing_errors(),
    }


async def billing_error_rows(store: InvoiceStore) -> list[Doc]:
    """Open billing errors for operators: tenant, period bounds (ISO 8601), reason, detail,
    attempts, later periods waiting, first and last failure (ISO 8601); by period, tenant."""
    return [
        {"invoice_id": e["_id"], "tenant_id": e["tenant_id"],
         "period_start": e["period_start"].isoformat(), "period_end": e["period_end"].isoformat(),
         "reason": e["reason"], "detail": e["detail"], "attempts": e["attempts"],
         "later_periods_waiting": e["later_periods_waiting"],
         "first_failed_at": e["first_failed_at"].isoformat(),
         "last_failed_at": e["last_failed_at"].isoformat()}
        for e in await store.open_billing_errors()
    ]


async def export_invoices(settings: CommonSettings) -> list[Doc]:
    """Every invoice as a `invoices.json` entry (`export_row`), sorted by invoice number."""
    async with open_store(settings) as store:
        return [export_row(d) for d in await list_invoices(store)]


async def config_applied(settings: CommonSettings, tenant_ids: list[str]) -> bool:
    """True when every tenant in `tenant_ids` has an accepted configuration version."""
    async with open_store(settings) as store:
        found = await queries.count_tenants(store, tenant_ids)
        return found == len(set(tenant_ids))


async def next_due_after(settings: CommonSettings, after: datetime) -> datetime | None:
    """The earliest instant > `after` at which the cycle has something to do (a period end, an
    overdue transition, a credit grant), or None."""
    async with open_store(settings) as store:
        return await next_due(store, after)
