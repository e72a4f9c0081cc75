"""Invoice status changes in MongoDB (`invoicer_invoices`, `invoicer_outbox`): the billing
clock's move to `overdue` and the queries the schedule needs (docs/billing-periods.md,
docs/design.md#statuses).

A status change and its `InvoiceStatusChanged` outbox entry commit in one transaction; the
update is guarded by the status read in it, so a concurrent change (a payment, another process
marking the same invoice) is never overwritten.
"""

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from contracts import TOPIC_INVOICE
from contracts.invoices import InvoiceStatus
from services.common.outbox import add_to_outbox
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.domain import AWAITING_PAYMENT, PaymentOutcome, next_status
from services.invoicer.names import OUTBOX
from services.invoicer.records import status_event

Doc = dict[str, Any]


async def overdue_candidates(store: InvoicerStore, as_of: datetime) -> list[Doc]:
    """Invoices awaiting payment whose overdue instant is at or before `as_of`, by that
    instant, then tenant."""
    query = {"status": {"$in": list(AWAITING_PAYMENT)}, "overdue_at": {"$lte": as_of}}
    return await store.invoices.find(query).sort(
        [("overdue_at", ASCENDING), ("tenant_id", ASCENDING)]).to_list()


async def move_to_overdue(store: InvoicerStore, inv_id: str) -> bool:
    """Move invoice `inv_id` to `overdue` at its overdue instant with its
    `InvoiceStatusChanged` (cause `clock`, deterministic event id), in one transaction; False
    when it is no longer awaiting payment. A concurrent mark raises `DuplicateKeyError`."""
    async def txn(session: AsyncClientSession) -> bool:
        current = await store.invoices.find_one({"_id": inv_id}, session=session)
        if current is None or current["status"] not in AWAITING_PAYMENT:
            return False
        at = current["overdue_at"]
        await store.invoices.update_one(
            {"_id": inv_id, "status": current["status"]},
            {"$set": {"status": InvoiceStatus.overdue},
             "$push": {"history": {"status": InvoiceStatus.overdue, "at": at,
                                   "cause": "clock"}}},
            session=session,
        )
        event = status_event({**current, "status": InvoiceStatus.overdue},
                             InvoiceStatus(current["status"]), InvoiceStatus.overdue,
                             "clock", at, reason="due date passed without payment")
        await add_to_outbox(store.db, OUTBOX, [(event, TOPIC_INVOICE, current["tenant_id"])],
                            session)
        return True

    return await store.transaction(txn)


async def next_overdue_after(store: InvoicerStore, after: datetime) -> datetime | None:
    """The earliest overdue instant > `after` of an invoice awaiting payment, or None."""
    query = {"status": {"$in": list(AWAITING_PAYMENT)}, "overdue_at": {"$gt": after}}
    first = await store.invoices.find(query).sort("overdue_at", ASCENDING).limit(1).to_list()
    return first[0]["overdue_at"] if first else None


async def change_status(
    store: InvoicerStore, inv_id: str, outcome: PaymentOutcome, at: datetime, cause: str
) -> InvoiceStatus | None:
    """`InvoiceStore.change_status` in one transaction: the update is guarded by the status
    read in it. Raises `LookupError` for an unknown invoice."""
    async def txn(session: AsyncClientSession) -> InvoiceStatus | None:
        current = await store.invoices.find_one({"_id": inv_id}, session=session)
        if current is None:
            raise LookupError(f"no invoice {inv_id!r}")
        previous = InvoiceStatus(current["status"])
        status = next_status(previous, outcome)
        if status == previous:
            return None
        await store.invoices.update_one(
            {"_id": inv_id, "status": previous},
            {"$set": {"status": status},
             "$push": {"history": {"status": status, "at": at, "cause": cause}}},
            session=session,
        )
        event = status_event({**current, "status": status}, previous, status, cause, at)
        await add_to_outbox(store.db, OUTBOX, [(event, TOPIC_INVOICE, current["tenant_id"])],
                            session)
        return status

    return await store.transaction(txn)
