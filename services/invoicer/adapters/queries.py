"""Read-only MongoDB queries behind the invoicer's reports (operators' views, the tenant view,
the dashboard): invoices by month of payment or refund, counts by status, tenant counts.
Invoices by number and by tenant and status are `InvoiceStore` reads
(`InvoicerStore.invoice_by_number`, `find_invoices`)."""

from collections.abc import Sequence
from typing import Any

from services.invoicer.adapters.store import InvoicerStore

Doc = dict[str, Any]


async def invoices_in_month(store: InvoicerStore, field: str, month: str) -> list[Doc]:
    """Invoices whose ISO date `field` (`paid_date`, `refunds.refunded_date`) falls in
    `month` (`YYYY-MM`)."""
    return await store.invoices.find({field: {"$regex": f"^{month}"}}).to_list()


async def count_invoices(store: InvoicerStore, statuses: Sequence[str]) -> int:
    """How many invoices have one of `statuses`."""
    return await store.invoices.count_documents({"status": {"$in": list(statuses)}})


async def count_tenants(store: InvoicerStore, tenant_ids: Sequence[str] | None = None) -> int:
    """How many tenants have a configuration (of `tenant_ids` when given)."""
    query: Doc = {} if tenant_ids is None else {"_id": {"$in": list(tenant_ids)}}
    return await store.tenants.count_documents(query)
