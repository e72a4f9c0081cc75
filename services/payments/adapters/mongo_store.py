"""`MongoPaymentsStore`: the `PaymentsStore` of the worker, in MongoDB.

Collections: `payments_customers` (`_id` tenant id: Stripe customer and default payment
method), `payments_invoices` (`_id` invoice id: `InvoiceRecord`), the outbox
`payments_outbox`, processed ids in `processed_events`, Stripe events kept until their invoice
is known in `payments_parked_events` (`_id` Stripe event id) and webhooks that were not applied
in `payments_audit`, subscription checkouts in `payments_subscription_checkouts` (`_id`
Checkout Session id). `commit` writes in one MongoDB transaction; an `Expect` becomes the filter
of a conditional replace, so the condition and the write are one atomic step.
"""

import dataclasses
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from contracts.base import Event, utc_now
from contracts.events import ALL_EVENTS
from contracts.invoices import InvoiceStatus
from services.common.mongo_errors import unavailable_as_retryable
from services.common.outbox import add_to_outbox, ensure_outbox_indexes
from services.common.tracking import already_processed, record_processed
from services.payments.adapters.mongo_checkouts import CHECKOUTS, MongoSubscriptionCheckouts
from services.payments.adapters.store import (
    AuditEntry,
    Customer,
    CustomerChange,
    Expect,
    Outgoing,
    ParkedEvent,
)
from services.payments.domain import InvoiceRecord
from services.payments.names import OUTBOX

CUSTOMERS = "payments_customers"
INVOICES = "payments_invoices"
PARKED = "payments_parked_events"
AUDIT = "payments_audit"
DUPLICATE_KEY = 11000
_EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls for cls in ALL_EVENTS if issubclass(cls, Event)}


class StaleState(Exception):
    """The invoice changed since it was read (another attempt won); nothing was written."""


def _to_doc(record: InvoiceRecord) -> dict[str, Any]:
    doc = dataclasses.asdict(record)
    doc["_id"] = doc.pop("invoice_id")
    doc["reported_intents"] = list(record.reported_intents)
    doc["duplicate_intents"] = list(record.duplicate_intents)
    doc["status"] = str(record.status)
    doc["refunds"] = _refund_docs(record.refunds)
    return doc


def _from_doc(doc: dict[str, Any]) -> InvoiceRecord:
    fields = {f.name for f in dataclasses.fields(InvoiceRecord)}
    values = {k: v for k, v in doc.items() if k in fields}
    values["reported_intents"] = tuple(doc.get("reported_intents", ()))
    values["duplicate_intents"] = tuple(doc.get("duplicate_intents", ()))
    values["refunds"] = tuple((r["refund_id"], int(r["amount"]), r["payment_intent"])
                              for r in doc.get("refunds", ()))
    values["status"] = InvoiceStatus(doc["status"])
    return InvoiceRecord(invoice_id=doc["_id"], **values)


def _refund_docs(refunds: tuple[tuple[str, int, str], ...]) -> list[dict[str, Any]]:
    return [{"refund_id": r, "amount": a, "payment_intent": pi} for r, a, pi in refunds]


def _filter(expect: Expect) -> dict[str, Any]:
    """The MongoDB filter matching a stored invoice document that meets `expect`."""
    clauses: list[dict[str, Any]] = []
    if expect.status is not None:
        clauses.append({"status": str(expect.status)})
    for name in ("attempts", "charging"):
        value = getattr(expect, name)
        if value is not None:
            clauses.append({name: value})
    if expect.idle_at is not None:
        clauses.append({"$or": [{"charging": None},
                                {"charging_until": {"$lte": expect.idle_at}}]})
    if expect.without_duplicate is not None:
        clauses.append({"duplicate_intents": {"$nin": [expect.without_duplicate]}})
    if expect.refunds:
        clauses.append({"refunds": _refund_docs(expect.refunds)})
    elif expect.refunds is not None:
        clauses.append({"$or": [{"refunds": []}, {"refunds": {"$exists": False}}]})
    return {"$and": clauses} if clauses else {}


def _all_duplicates(exc: BulkWriteError) -> bool:
    errors = exc.details.get("writeErrors", [])
    return bool(errors) and all(e.get("code") == DUPLICATE_KEY for e in errors)


@unavailable_as_retryable
class MongoPaymentsStore(MongoSubscriptionCheckouts):
    """`PaymentsStore` in MongoDB (see the module docstring); `client` runs the transactions;
    the subscription checkout queries come from `MongoSubscriptionCheckouts`."""

    def __init__(
        self, client: AsyncMongoClient[dict[str, Any]], db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        self.client = client
        self.db = db

    async def ensure_indexes(self) -> None:
        """Create the indexes (idempotent)."""
        await ensure_outbox_indexes(self.db, OUTBOX)
        await self.db[INVOICES].create_index("invoice_number", unique=True)
        await self.db[INVOICES].create_index([("status", ASCENDING),
                                              ("next_attempt_at", ASCENDING)])
        await self.db[INVOICES].create_index("payment_reference")
        await self.db[INVOICES].create_index("duplicate_intents")
        await self.db[PARKED].create_index("invoice_id")
        await self.db[CHECKOUTS].create_index([("tenant_id", ASCENDING), ("status", ASCENDING),
                                               ("opened_at", ASCENDING)])

    async def customer(self, tenant_id: str) -> Customer | None:
        """`{customer_id, payment_method_id, payment_method}` of a tenant, if any."""
        return await self.db[CUSTOMERS].find_one({"_id": tenant_id})

    async def save_customer(self, tenant_id: str, customer_id: str,
                            payment_method_id: str | None, payment_method: str | None) -> None:
        """Record the tenant's Stripe customer and default payment method."""
        await self.db[CUSTOMERS].update_one(
            {"_id": tenant_id},
            {"$set": {"customer_id": customer_id, "payment_method_id": payment_method_id,
                      "payment_method": payment_method, "updated_at": utc_now()}},
            upsert=True,
        )

    async def save_billing(self, tenant_id: str, customer_id: str,
                           billing: dict[str, Any]) -> None:
        """Record the tenant's Stripe customer and billing details, keeping its card."""
        await self.db[CUSTOMERS].update_one(
            {"_id": tenant_id},
            {"$set": {"customer_id": customer_id, "billing": dict(billing),
                      "updated_at": utc_now()}},
            upsert=True,
        )

    async def invoice(self, invoice_id: str) -> InvoiceRecord | None:
        """The record of invoice `invoice_id`, if any."""
        doc = await self.db[INVOICES].find_one({"_id": invoice_id})
        return _from_doc(doc) if doc else None

    async def invoice_by_number(self, number: str) -> InvoiceRecord | None:
        """The record of invoice number `number`, if any."""
        doc = await self.db[INVOICES].find_one({"invoice_number": number})
        return _from_doc(doc) if doc else None

    async def invoice_by_intent(self, intent_id: str) -> InvoiceRecord | None:
        """The invoice paid by PaymentIntent `intent_id`, or that it paid a second time."""
        doc = await self.db[INVOICES].find_one(
            {"$or": [{"payment_reference": intent_id}, {"duplicate_intents": intent_id}]})
        return _from_doc(doc) if doc else None

    async def set_payment_method(self, invoice_id: str, description: str) -> None:
        """Store a better description (`card visa 4242`) of how the invoice was paid."""
        await self.db[INVOICES].update_one({"_id": invoice_id},
                                           {"$set": {"payment_method": description}})

    async def parked(self, invoice_id: str) -> list[ParkedEvent]:
        """Stripe events kept for `invoice_id` (arrived before the invoice), oldest first."""
        cursor = self.db[PARKED].find({"invoice_id": invoice_id}).sort("parked_at", ASCENDING)
        return [ParkedEvent(d["_id"], d["invoice_id"], d["intent_id"], d["parked_at"])
                for d in await cursor.to_list()]

    async def drop_parked(self, event_ids: list[str]) -> None:
        """Forget parked events once their invoice reconciled them."""
        if event_ids:
            await self.db[PARKED].delete_many({"_id": {"$in": event_ids}})

    async def audit_entries(self, invoice_id: str) -> list[AuditEntry]:
        """The Stripe events not applied to `invoice_id`, in the order they were recorded."""
        cursor = self.db[AUDIT].find({"invoice_id": invoice_id}).sort("_id", ASCENDING)
        return [AuditEntry(d["stripe_event_id"], d["intent_id"], d["invoice_id"], d["reason"],
                           d["at"], d["detail"]) for d in await cursor.to_list()]

    async def outbox_events(self) -> list[Event]:
        """Every event added to the outbox, published or not, in write order."""
        docs = await self.db[OUTBOX].find().sort("seq", ASCENDING).to_list()
        return [_EVENT_TYPES[d["type"]].model_validate_json(d["payload"]) for d in docs]

    async def due_retries(self, as_of: datetime, limit: int = 500) -> list[InvoiceRecord]:
        """Failed invoices whose next attempt is at or before `as_of`, earliest first."""
        cursor = self.db[INVOICES].find(
            {"status": "failed", "next_attempt_at": {"$ne": None, "$lte": as_of}}
        ).sort("next_attempt_at", ASCENDING).limit(limit)
        return [_from_doc(d) for d in await cursor.to_list()]

    async def next_retry_after(self, after: datetime) -> datetime | None:
        """The earliest scheduled retry strictly later than `after`."""
        doc = await self.db[INVOICES].find_one(
            {"status": "failed", "next_attempt_at": {"$ne": None, "$gt": after}},
            sort=[("next_attempt_at", ASCENDING)],
        )
        return doc["next_attempt_at"] if doc else None

    async def mark_attempt(self, invoice_id: str, attempts: int, at: datetime,
                           lease_until: datetime | None = None,
                           status: InvoiceStatus = InvoiceStatus.failed) -> bool:
        """Take the invoice's charge lease for attempt `attempts + 1` of an invoice in `status`
        with `attempts` attempts, starting at `at` (so a webhook that beats the retry's own commit
        dates it right), held until `lease_until` (wall clock; None: until the commit).
        False, writing nothing, when the invoice changed or another lease still holds
        (docs/payments.md "Charge lease")."""
        result = await self.db[INVOICES].update_one(
            {"_id": invoice_id, "status": str(status), "attempts": attempts,
             "$or": [{"charging": None}, {"charging_until": {"$lte": utc_now()}}]},
            {"$set": {"last_attempt_at": at, "charging": attempts + 1,
                      "charging_until": lease_until}},
        )
        return bool(result.matched_count)

    async def release_attempt(self, invoice_id: str, attempt: int) -> None:
        """Give the lease of `attempt` back (its Stripe call failed without an outcome)."""
        await self.db[INVOICES].update_one(
            {"_id": invoice_id, "charging": attempt},
            {"$set": {"charging": None, "charging_until": None}})

    async def processed(self, consumer: str, event_id: str) -> bool:
        """True when `consumer` already committed event `event_id`."""
        return await already_processed(self.db, consumer, event_id)

    async def commit(
        self,
        *,
        consumer: str | None = None,
        event_id: str | None = None,
        record: InvoiceRecord | None = None,
        outgoing: Outgoing | None = None,
        expect: Expect | None = None,
        park: ParkedEvent | None = None,
        audit: AuditEntry | None = None,
        customer: CustomerChange | None = None,
        checkout_status: tuple[str, str] | None = None,
    ) -> bool:
        """One transaction; see `PaymentsStore.commit`."""
        condition = _filter(expect) if expect is not None else None

        async def work(session: AsyncClientSession) -> None:
            if consumer and event_id:
                if not await record_processed(self.db, consumer, event_id, session):
                    raise DuplicateKeyError("already processed")
            if record is not None:
                doc = _to_doc(record)
                if condition is None:
                    await self.db[INVOICES].replace_one({"_id": doc["_id"]}, doc,
                                                        upsert=True, session=session)
                else:
                    result = await self.db[INVOICES].replace_one(
                        {**condition, "_id": doc["_id"]}, doc, session=session)
                    if result.matched_count == 0:
                        raise StaleState(record.invoice_id)
            await add_to_outbox(self.db, OUTBOX, outgoing or [], session)
            if park is not None:
                await self.db[PARKED].insert_one(
                    {"_id": park.event_id, "invoice_id": park.invoice_id,
                     "intent_id": park.intent_id, "parked_at": park.parked_at},
                    session=session)
            if audit is not None:
                await self.db[AUDIT].insert_one(dataclasses.asdict(audit), session=session)
            if customer is not None:
                await self.db[CUSTOMERS].update_one(
                    {"_id": customer.tenant_id},
                    {"$set": {**customer.fields, "updated_at": utc_now()}}, upsert=True,
                    session=session)
            if checkout_status is not None:
                await self.db[CHECKOUTS].update_one(
                    {"_id": checkout_status[0]}, {"$set": {"status": checkout_status[1]}},
                    session=session)

        try:
            async with self.client.start_session() as session:
                await session.with_transaction(work)
        except (DuplicateKeyError, StaleState):
            return False
        except BulkWriteError as exc:
            if not _all_duplicates(exc):
                raise
            return False
        return True
