"""MongoDB store of the payments service.

Collections: `payments_customers` (`_id` tenant id: Stripe customer and default payment
method), `payments_invoices` (`_id` invoice id: `InvoiceRecord`), the outbox
`payments_outbox`, processed ids in `processed_events`, Stripe events kept until their invoice
is known in `payments_parked_events` (`_id` Stripe event id) and webhooks that were not applied
in `payments_audit`. `commit` is the one atomic write: tracking record + invoice state (under
an optional condition) + outbox entries + extra documents in one transaction.
"""

import dataclasses
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from contracts.base import Event, utc_now
from services.common.outbox import add_to_outbox, ensure_outbox_indexes, outbox_collection
from services.common.tracking import already_processed, record_processed
from services.payments.domain import InvoiceRecord

CUSTOMERS = "payments_customers"
INVOICES = "payments_invoices"
OUTBOX = outbox_collection("payments")
PARKED = "payments_parked_events"
AUDIT = "payments_audit"
Outgoing = list[tuple[Event, str, str]]
DUPLICATE_KEY = 11000


class StaleState(Exception):
    """The invoice changed since it was read (another attempt won); nothing was written."""


def _to_doc(record: InvoiceRecord) -> dict[str, Any]:
    doc = dataclasses.asdict(record)
    doc["_id"] = doc.pop("invoice_id")
    doc["reported_intents"] = list(record.reported_intents)
    doc["duplicate_intents"] = list(record.duplicate_intents)
    doc["refunds"] = [{"refund_id": r, "amount": a, "payment_intent": pi}
                      for r, a, pi in record.refunds]
    return doc


def _from_doc(doc: dict[str, Any]) -> InvoiceRecord:
    fields = {f.name for f in dataclasses.fields(InvoiceRecord)}
    values = {k: v for k, v in doc.items() if k in fields}
    values["reported_intents"] = tuple(doc.get("reported_intents", ()))
    values["duplicate_intents"] = tuple(doc.get("duplicate_intents", ()))
    values["refunds"] = tuple((r["refund_id"], int(r["amount"]), r["payment_intent"])
                              for r in doc.get("refunds", ()))
    return InvoiceRecord(invoice_id=doc["_id"], **values)


def _all_duplicates(exc: BulkWriteError) -> bool:
    errors = exc.details.get("writeErrors", [])
    return bool(errors) and all(e.get("code") == DUPLICATE_KEY for e in errors)


class PaymentsStore:
    """The payments service's MongoDB state (see the module docstring)."""

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

    async def customer(self, tenant_id: str) -> dict[str, Any] | None:
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

    async def invoice(self, invoice_id: str) -> InvoiceRecord | None:
        doc = await self.db[INVOICES].find_one({"_id": invoice_id})
        return _from_doc(doc) if doc else None

    async def invoice_by_number(self, number: str) -> InvoiceRecord | None:
        doc = await self.db[INVOICES].find_one({"invoice_number": number})
        return _from_doc(doc) if doc else None

    async def invoice_by_reference(self, reference: str) -> InvoiceRecord | None:
        doc = await self.db[INVOICES].find_one({"payment_reference": reference})
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

    async def parked(self, invoice_id: str) -> list[dict[str, Any]]:
        """Stripe events kept for `invoice_id` (arrived before the invoice), oldest first."""
        cursor = self.db[PARKED].find({"invoice_id": invoice_id}).sort("parked_at", ASCENDING)
        return await cursor.to_list()

    async def drop_parked(self, event_ids: list[str]) -> None:
        """Forget parked events once their invoice reconciled them."""
        if event_ids:
            await self.db[PARKED].delete_many({"_id": {"$in": event_ids}})

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
                           lease_until: datetime | None = None) -> bool:
        """Take the invoice's charge lease for attempt `attempts + 1` of a failed invoice with
        `attempts` attempts, starting at `at` (so a webhook that beats the retry's own commit
        dates it right), held until `lease_until` (wall clock; None: until the commit).
        False, writing nothing, when the invoice changed or another lease still holds
        (docs/payments.md "Charge lease")."""
        result = await self.db[INVOICES].update_one(
            {"_id": invoice_id, "status": "failed", "attempts": attempts,
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
        return await already_processed(self.db, consumer, event_id)

    async def commit(
        self,
        *,
        consumer: str | None = None,
        event_id: str | None = None,
        record: InvoiceRecord | None = None,
        expect_attempts: int | None = None,
        outgoing: Outgoing | None = None,
        expect: dict[str, Any] | None = None,
        extra: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> bool:
        """Atomically: mark `event_id` processed by `consumer`, write `record` (only if the
        stored one still has `expect_attempts` attempts and matches the filter `expect`, when
        given), add `outgoing` to the outbox and insert the `(collection, document)` pairs of
        `extra`. Returns False, writing nothing, when the event was already processed, the
        record changed meanwhile, or an outgoing event id is already in the outbox."""
        condition = dict(expect or {})
        if expect_attempts is not None:
            condition["attempts"] = expect_attempts

        async def work(session: AsyncClientSession) -> None:
            if consumer and event_id:
                if not await record_processed(self.db, consumer, event_id, session):
                    raise DuplicateKeyError("already processed")
            if record is not None:
                doc = _to_doc(record)
                if not condition:
                    await self.db[INVOICES].replace_one({"_id": doc["_id"]}, doc,
                                                        upsert=True, session=session)
                else:
                    result = await self.db[INVOICES].replace_one(
                        {**condition, "_id": doc["_id"]}, doc, session=session)
                    if result.matched_count == 0:
                        raise StaleState(record.invoice_id)
            await add_to_outbox(self.db, OUTBOX, outgoing or [], session)
            for collection, document in extra or []:
                await self.db[collection].insert_one(document, session=session)

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
