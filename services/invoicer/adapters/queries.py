"""Read-only MongoDB queries behind the invoicer's reports (operators' views, the tenant view,
the dashboard): invoices by number, status, month of payment or refund, and tenant counts."""

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING

from services.invoicer.adapters.store import InvoicerStore

Doc = dict[str, Any]


async def invoices(
    store: InvoicerStore, tenant_id: str | None = None, statuses: Sequence[str] | None = None
) -> list[Doc]:
    """Invoice documents by number, optionally of one tenant and with one of `statuses`."""
    query: Doc = {}
    if tenant_id:
        query["tenant_id"] = tenant_id
    if statuses is not None:
        query["status"] = {"$in": list(statuses)}
    return await store.invoices.find(query).sort("invoice_number", ASCENDING).to_list()


async def invoice_by_number(store: InvoicerStore, number: str) -> Doc | None:
    """The invoice with `number` (`INV-YYYY-NNNN`) or id, or None."""
    return await store.invoices.find_one({"$or": [{"invoice_number": number}, {"_id": number}]})


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
