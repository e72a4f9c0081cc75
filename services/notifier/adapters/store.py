"""The notifier's record of emails: `notifier_sent`, one document per (invoice, kind), and one
per usage alert (`_id` "{event id}:usage_alert", fields `kind`, `tenant_id`, `recipient`,
`meter`, `threshold_percent`, the status and timestamps).

Document: `_id` = `"{invoice_id}:{kind}"`, `status` (`sending` -> `sent` | `failed`, or
`skipped` when the tenant had notifications off), `kind`, `invoice_id`, `invoice_number`,
`tenant_id`, `recipient`, `message_id`, `source_event_id`, timestamps, `reason` for failures,
and `attempts`: delivery rounds (claims); more than one means a temporary SMTP failure or a
crash before the record was final. Finishing a notification writes the status and its events
(`NotificationSent` / `NotificationFailed`, dead letters) to the outbox in one transaction.
"""

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from contracts import BillingConfigApplied
from contracts.base import Event, utc_now
from services.common.mongo_errors import unavailable_as_retryable
from services.common.outbox import add_to_outbox, ensure_outbox_indexes
from services.notifier.domain import Contact, NotificationRequest
from services.notifier.names import OUTBOX

SENT_COLLECTION = "notifier_sent"
#: The notifier's projection of tenants' contact settings (`BillingConfigApplied`), one document
#: per tenant: `_id` tenant id, `version`, `billing_email`, `email_notifications`, `updated_at`.
CONTACTS_COLLECTION = "notifier_contacts"
Status = Literal["sending", "sent", "failed", "skipped"]
#: Statuses after which nothing more is sent for a notification id.
FINAL: frozenset[str] = frozenset({"sent", "failed", "skipped"})
#: (event, contract topic, message key) to publish through the outbox.
Outgoing = tuple[Event, str, str]


class NotificationStore(Protocol):
    """Durable state of each (invoice, kind) email. Every method is idempotent."""

    async def ensure_indexes(self) -> None: ...

    async def status(self, notification_id: str) -> str | None:
        """The notification's status, None if it was never seen."""
        ...

    async def record_skipped(self, request: NotificationRequest, reason: str) -> None:
        """Record that nothing is sent for `request` (no-op if a record exists)."""
        ...

    async def claim(self, request: NotificationRequest, message_id: str) -> None:
        """Mark `sending` before talking to the SMTP server (counts the attempt)."""
        ...

    async def skip_other(self, notification_id: str, record: dict[str, Any], reason: str) -> None:
        """`record_skipped` for an email that is not about an invoice (a usage alert):
        `record` holds its descriptive fields."""
        ...

    async def claim_other(
        self, notification_id: str, record: dict[str, Any], message_id: str
    ) -> None:
        """`claim` for an email that is not about an invoice."""
        ...

    async def finish(
        self, notification_id: str, status: Status, events: list[Outgoing], reason: str = ""
    ) -> None:
        """Set the final `status` and add `events` to the outbox, atomically."""
        ...

    async def record_contact(self, event: BillingConfigApplied) -> bool:
        """Project `event` into the tenant's contact settings unless a version at least as new
        is already there; True when it changed the projection. Idempotent."""
        ...

    async def contact(self, tenant_id: str) -> Contact | None:
        """The tenant's projected contact settings, None before the first `BillingConfigApplied`."""
        ...


def _new_record(request: NotificationRequest) -> dict[str, Any]:
    return {
        "kind": request.kind,
        "invoice_id": request.invoice_id,
        "invoice_number": request.invoice_number,
        "tenant_id": request.tenant_id,
        "recipient": request.recipient,
        "source_event_id": request.source_event_id,
        "created_at": utc_now(),
    }


@unavailable_as_retryable
class MongoNotificationStore:
    """`NotificationStore` on MongoDB; the outbox is `notifier_outbox`."""

    def __init__(
        self, client: AsyncMongoClient[dict[str, Any]], db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        self._client = client
        self._db = db
        self._sent = db[SENT_COLLECTION]

    async def ensure_indexes(self) -> None:
        await ensure_outbox_indexes(self._db, OUTBOX)
        await self._sent.create_index("invoice_id")

    async def status(self, notification_id: str) -> str | None:
        doc = await self._sent.find_one({"_id": notification_id}, {"status": 1})
        return None if doc is None else str(doc["status"])

    async def record_skipped(self, request: NotificationRequest, reason: str) -> None:
        await self._sent.update_one(
            {"_id": request.notification_id},
            {"$setOnInsert": {**_new_record(request), "status": "skipped", "reason": reason}},
            upsert=True,
        )

    async def claim(self, request: NotificationRequest, message_id: str) -> None:
        await self._sent.update_one(
            {"_id": request.notification_id},
            {
                "$setOnInsert": _new_record(request),
                "$set": {"status": "sending", "message_id": message_id, "claimed_at": utc_now()},
                "$inc": {"attempts": 1},
            },
            upsert=True,
        )

    async def skip_other(self, notification_id: str, record: dict[str, Any], reason: str) -> None:
        await self._sent.update_one(
            {"_id": notification_id},
            {"$setOnInsert": {**record, "created_at": utc_now(), "status": "skipped",
                              "reason": reason}},
            upsert=True,
        )

    async def claim_other(
        self, notification_id: str, record: dict[str, Any], message_id: str
    ) -> None:
        await self._sent.update_one(
            {"_id": notification_id},
            {"$setOnInsert": {**record, "created_at": utc_now()},
             "$set": {"status": "sending", "message_id": message_id, "claimed_at": utc_now()},
             "$inc": {"attempts": 1}},
            upsert=True,
        )

    async def finish(
        self, notification_id: str, status: Status, events: list[Outgoing], reason: str = ""
    ) -> None:
        async def write(session: AsyncClientSession) -> None:
            await self._sent.update_one(
                {"_id": notification_id},
                {"$set": {"status": status, "reason": reason, f"{status}_at": utc_now()}},
                session=session,
            )
            await add_to_outbox(self._db, OUTBOX, events, session)

        async with self._client.start_session() as session:
            await session.with_transaction(write)

    async def record_contact(self, event: BillingConfigApplied) -> bool:
        try:
            result = await self._db[CONTACTS_COLLECTION].update_one(
                {"_id": event.tenant_id, "version": {"$lt": event.config_version}},
                {"$set": _contact_doc(event)}, upsert=True,
            )
        except DuplicateKeyError:  # the projection already holds this version or a newer one
            return False
        return bool(result.modified_count or result.upserted_id is not None)

    async def contact(self, tenant_id: str) -> Contact | None:
        doc = await self._db[CONTACTS_COLLECTION].find_one({"_id": tenant_id})
        return None if doc is None else _contact(doc)


def _contact_doc(event: BillingConfigApplied) -> dict[str, Any]:
    return {"version": event.config_version, "billing_email": str(event.billing_email),
            "email_notifications": event.email_notifications, "submitted_at": event.submitted_at,
            "updated_at": utc_now()}


def _contact(doc: dict[str, Any]) -> Contact:
    return Contact(int(doc["version"]), str(doc["billing_email"]), bool(doc["email_notifications"]))


@dataclass
class InMemoryNotificationStore:
    """`NotificationStore` in dictionaries, for unit tests: `records` by id, `outbox` list."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    outbox: list[Outgoing] = field(default_factory=list)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def ensure_indexes(self) -> None:
        return None

    async def status(self, notification_id: str) -> str | None:
        record = self.records.get(notification_id)
        return None if record is None else str(record["status"])

    async def record_skipped(self, request: NotificationRequest, reason: str) -> None:
        self.records.setdefault(
            request.notification_id,
            {**_new_record(request), "status": "skipped", "reason": reason},
        )

    async def claim(self, request: NotificationRequest, message_id: str) -> None:
        record = self.records.setdefault(request.notification_id, _new_record(request))
        record.update(status="sending", message_id=message_id,
                      attempts=record.get("attempts", 0) + 1)

    async def skip_other(self, notification_id: str, record: dict[str, Any], reason: str) -> None:
        self.records.setdefault(notification_id, {**record, "status": "skipped",
                                                  "reason": reason})

    async def claim_other(
        self, notification_id: str, record: dict[str, Any], message_id: str
    ) -> None:
        stored = self.records.setdefault(notification_id, dict(record))
        stored.update(status="sending", message_id=message_id,
                      attempts=stored.get("attempts", 0) + 1)

    async def finish(
        self, notification_id: str, status: Status, events: list[Outgoing], reason: str = ""
    ) -> None:
        self.records[notification_id].update(status=status, reason=reason)
        self.outbox.extend(events)

    async def record_contact(self, event: BillingConfigApplied) -> bool:
        current = self.contacts.get(event.tenant_id)
        if current is not None and current["version"] >= event.config_version:
            return False
        self.contacts[event.tenant_id] = _contact_doc(event)
        return True

    async def contact(self, tenant_id: str) -> Contact | None:
        doc = self.contacts.get(tenant_id)
        return None if doc is None else _contact(doc)
