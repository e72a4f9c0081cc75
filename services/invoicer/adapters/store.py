"""The invoicer's MongoDB collections (all prefixed `invoicer_`) and their documents.

    invoicer_configs       one document per accepted configuration version
                           (_id "{tenant}#{version}", the command as JSON, actor, accepted_at,
                           submitted_at = the command's occurred_at)
    invoicer_tenants       one per tenant: the current version and configuration, plus the
                           ledger the invoice transaction updates (coupon redemptions, credit
                           use, `ledger_rev` for optimistic concurrency)
    invoicer_invoices      one per tenant and period (_id = deterministic invoice id), unique
                           `invoice_number`
    invoicer_billed_usage  what each invoice billed per meter (_id "{tenant}|{start}|{meter}"),
                           read again to find late usage
    invoicer_counters      one per year: the last invoice number's sequence
    invoicer_audit         refused commands and forced operator issues: who, what, when, why
    invoicer_coupons       the coupon catalog (`adapters/catalog.py`)
    invoicer_outbox        events waiting for the relay
"""

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from contracts import BillingConfigSubmitted, PlanSubmitted
from contracts.base import Event
from contracts.invoices import InvoiceStatus
from services.common.mongo_errors import unavailable_as_retryable
from services.common.outbox import add_to_outbox, ensure_outbox_indexes
from services.common.tracking import PROCESSED_EVENTS, already_processed, record_processed
from services.invoicer.adapters.usage import CollectorUsage, UsageSource
from services.invoicer.domain import PaymentOutcome
from services.invoicer.names import OUTBOX
from services.invoicer.periods import Period
from services.invoicer.versions import ConfigVersion, in_force

if TYPE_CHECKING:  # records imports this module
    from services.invoicer.operator_rules import OperatorCommand
    from services.invoicer.records import IssueDraft

CONFIGS = "invoicer_configs"
TENANTS = "invoicer_tenants"
INVOICES = "invoicer_invoices"
BILLED = "invoicer_billed_usage"
COUNTERS = "invoicer_counters"
AUDIT = "invoicer_audit"

Doc = dict[str, Any]
T = TypeVar("T")
#: See `invoice_store.Read` (the session is the issuing transaction's).
Read = Callable[[Any], Awaitable["IssueDraft | None"]]


@unavailable_as_retryable
class InvoicerStore:
    """The invoicer's database handle: collections plus a transaction runner.

    `transaction(fn)` runs `fn(session)` in one MongoDB transaction, retried by PyMongo on
    transient errors (write conflicts between concurrent invoicer processes).
    """

    def __init__(
        self, client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc],
        usage: UsageSource | None = None,
    ) -> None:
        """`usage` defaults to the collector's data in `db` (`CollectorUsage`)."""
        self.client = client
        self.db = db
        self.usage: UsageSource = usage if usage is not None else CollectorUsage(db)
        self.configs = db[CONFIGS]
        self.tenants = db[TENANTS]
        self.invoices = db[INVOICES]
        self.billed = db[BILLED]
        self.counters = db[COUNTERS]
        self.audit = db[AUDIT]

    async def ensure_indexes(self) -> None:
        """Create the indexes the invoicer relies on; idempotent."""
        await self.invoices.create_index("invoice_number", unique=True)
        await self.invoices.create_index(
            [("tenant_id", ASCENDING), ("period_start", ASCENDING)], unique=True
        )
        await self.invoices.create_index([("status", ASCENDING), ("overdue_at", ASCENDING)])
        await self.billed.create_index([("tenant_id", ASCENDING), ("period_start", ASCENDING)])
        await self.configs.create_index([("tenant_id", ASCENDING), ("version", ASCENDING)])
        await ensure_outbox_indexes(self.db, OUTBOX)
        await self.db[PROCESSED_EVENTS].find_one({})  # touch: created on first insert

    async def transaction(self, fn: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """Run `fn(session)` atomically; retried on transient errors."""
        async with self.client.start_session() as session:
            return await session.with_transaction(fn)

    async def ensure_counter(self, key: str) -> None:
        """Create the counter document `key` outside any transaction (a concurrent create is
        harmless), so transactions only ever `$inc` it."""
        try:
            await self.counters.update_one(
                {"_id": key}, {"$setOnInsert": {"seq": 0}}, upsert=True
            )
        except DuplicateKeyError:
            pass

    async def seen(self, consumer: str, event_id: str, session: AsyncClientSession) -> bool:
        """Whether `consumer` already processed `event_id` (its tracking record, read in
        `session`)."""
        return await already_processed(self.db, consumer, event_id, session)

    async def mark_processed(
        self, consumer: str, event_id: str, session: AsyncClientSession
    ) -> None:
        """Record that `consumer` processed `event_id`, in `session` (unique per pair: a
        concurrent duplicate aborts its transaction with `DuplicateKeyError`)."""
        await record_processed(self.db, consumer, event_id, session)

    async def add_outbox(
        self, entries: list[tuple[Event, str, str]], session: AsyncClientSession
    ) -> None:
        """Queue (event, contract topic, key) entries in the invoicer's outbox, in `session`."""
        await add_to_outbox(self.db, OUTBOX, entries, session)

    async def add_config_version(
        self, command: BillingConfigSubmitted, version: int, now: datetime,
        session: AsyncClientSession,
    ) -> None:
        """Record `command` as configuration `version` of its tenant, accepted at `now`, and
        make it the tenant's current one (creating the tenant with an empty ledger)."""
        body = command.model_dump(mode="json")
        await self.configs.insert_one(
            {"_id": config_key(command.tenant_id, version), "tenant_id": command.tenant_id,
             "version": version, "event_id": command.event_id, "actor": body["actor"],
             "accepted_at": now, "command": body, "submitted_at": command.occurred_at},
            session=session,
        )
        await self.tenants.update_one(
            {"_id": command.tenant_id},
            {"$set": {"version": version, "config": body, "tenant_name": command.tenant_name,
                      "auto_generate_invoices": command.settings.auto_generate_invoices,
                      "updated_at": now},
             "$setOnInsert": {"ledger_rev": 0, "coupons": [], "credits_used": [],
                              "invoices": 0, "created_at": now}},
            upsert=True, session=session,
        )

    async def invoice(self, inv_id: str, session: AsyncClientSession | None = None) -> Doc | None:
        """The invoice document `inv_id`, or None."""
        return await self.invoices.find_one({"_id": inv_id}, session=session)

    async def update_invoice(
        self, inv_id: str, expected_status: str | None, update: Doc,
        session: AsyncClientSession,
    ) -> None:
        """Apply the MongoDB `update` to invoice `inv_id` in `session`, only while its status is
        still `expected_status` (any status when None)."""
        guard: Doc = {"_id": inv_id}
        if expected_status is not None:
            guard["status"] = expected_status
        await self.invoices.update_one(guard, update, session=session)

    async def billed_before(
        self, tenant_id: str, before: datetime, currency: str, session: AsyncClientSession
    ) -> list[Doc]:
        """The tenant's billed-usage records of periods ended at or before `before` and
        invoiced in `currency`, read in `session`, by period start and meter."""
        same_currency = await self.invoices.distinct(
            "_id", {"tenant_id": tenant_id, "currency": currency}, session=session)
        query = {"tenant_id": tenant_id, "period_end": {"$lte": before},
                 "invoice_id": {"$in": same_currency}}
        return await self.billed.find(query, session=session).sort(
            [("period_start", ASCENDING), ("meter", ASCENDING)]).to_list()

    async def update_billed(self, guard: Doc, update: Doc, session: AsyncClientSession) -> bool:
        """Apply `update` to the billed-usage record matching `guard` (its `_id` and `rev`),
        in `session`; False when none matched (the record moved meanwhile)."""
        result = await self.billed.update_one(guard, update, session=session)
        return result.modified_count == 1

    async def invoices_of(self, tenant_id: str) -> list[Doc]:
        """Every invoice document of `tenant_id`."""
        return await self.invoices.find({"tenant_id": tenant_id}).to_list()

    async def tenant(self, tenant_id: str, session: AsyncClientSession | None = None) -> Doc | None:
        """The tenant document (current configuration and ledger), or None."""
        return await self.tenants.find_one({"_id": tenant_id}, session=session)

    async def all_tenants(self) -> list[Doc]:
        """Every configured tenant, by id."""
        return await self.tenants.find({}).sort("_id", ASCENDING).to_list()

    async def config_version(self, tenant_id: str, version: int) -> BillingConfigSubmitted | None:
        """The configuration `version` of `tenant_id` as it was accepted."""
        doc = await self.configs.find_one({"_id": config_key(tenant_id, version)})
        return None if doc is None else BillingConfigSubmitted.model_validate(doc["command"])

    async def config_versions(
        self, tenant_id: str, session: AsyncClientSession | None = None
    ) -> list[ConfigVersion]:
        """Every accepted configuration version of `tenant_id`, by version number."""
        docs = await self.configs.find({"tenant_id": tenant_id}, session=session).sort(
            "version", ASCENDING).to_list()
        return [config_version_of(d) for d in docs]

    async def config_in_force(
        self, tenant_id: str, at: datetime, session: AsyncClientSession | None = None
    ) -> ConfigVersion | None:
        """The configuration version in force at instant `at` (docs/billing-periods.md,
        "Version in force"), or None when the tenant has no recorded version."""
        versions = await self.config_versions(tenant_id, session)
        return in_force(versions, at) if versions else None

    async def schedule_of(self, tenant: Doc) -> tuple[list[ConfigVersion], datetime]:
        """See `invoice_store.schedule_of`."""
        from services.invoicer.adapters import invoice_store
        return await invoice_store.schedule_of(self, tenant)

    async def last_invoiced_end(
        self, tenant_id: str, session: AsyncClientSession | None = None
    ) -> datetime | None:
        """The end instant of the tenant's latest invoiced period, or None before the first."""
        docs = await self.invoices.find(  # the chain has no overlap: the latest start ends last
            {"tenant_id": tenant_id}, projection={"period_end": 1}, session=session
        ).sort("period_start", -1).limit(1).to_list()
        return docs[0]["period_end"] if docs else None

    async def invoices_overlapping(
        self, tenant_id: str, start: datetime, end: datetime,
        session: AsyncClientSession | None = None,
    ) -> list[Doc]:
        """The tenant's invoices whose period shares time with [start, end)."""
        query = {"tenant_id": tenant_id, "period_start": {"$lt": end}, "period_end": {"$gt": start}}
        return await self.invoices.find(query, session=session).sort(
            "period_start", ASCENDING).to_list()

    async def record_forced_issue(
        self, invoice_id: str, actor: str, reason: str, at: datetime, number: str | None = None
    ) -> None:
        """Audit an operator's forced issue of `invoice_id` (who, what, when, why): written
        before the invoice is issued, completed with its number afterwards."""
        await self.audit.update_one(
            {"_id": f"forced-issue:{invoice_id}"},
            {"$setOnInsert": {
                "who": {"user_id": actor},
                "what": {"command": "invoices issue --force", "invoice_id": invoice_id},
                "when": {"requested_at": at},
                "why": {"reason": reason},
                "decision": "forced",
            }, **({"$set": {"invoice_number": number}} if number else {})},
            upsert=True,
        )

    async def record_refusal(
        self, command: "BillingConfigSubmitted | OperatorCommand | PlanSubmitted", reason: str,
        detail: str,
        at: datetime,
    ) -> None:
        """Audit a refused command (who, what, when, why); one record per command event id.
        `what` names the command type, its tenant (None for a coupon's creation) and, for a
        coupon command, its `code` (a plan command: the plan's code)."""
        code = command.plan.code if isinstance(command, PlanSubmitted) else getattr(
            command, "code", None)
        await self.audit.update_one(
            {"_id": command.event_id},
            {"$setOnInsert": {
                "who": {"user_id": command.actor.user_id, "role": command.actor.role},
                "what": {"command": type(command).__name__,
                         "tenant_id": getattr(command, "tenant_id", None),
                         "event_id": command.event_id, **({"code": code} if code else {})},
                "when": {"submitted_at": command.occurred_at, "refused_at": at},
                "why": {"reason": reason, "detail": detail},
                "decision": "refused",
            }},
            upsert=True,
        )

    async def submission_outcomes(self, event_ids: list[str]) -> dict[str, str]:
        """What became of configuration commands, by event id: `"applied"` (a version was
        accepted) or the reason they were refused (from the audit); ids not seen yet are
        absent."""
        found: dict[str, str] = {}
        async for doc in self.configs.find({"event_id": {"$in": event_ids}}, {"event_id": 1}):
            found[doc["event_id"]] = "applied"
        async for doc in self.audit.find({"_id": {"$in": event_ids}}, {"why": 1}):
            found.setdefault(doc["_id"], str(doc["why"]["reason"]))
        return found

    # InvoiceStore (adapters/invoice_store.py): the transactions live in adapters/issuing.py,
    # adapters/invoices.py and adapters/billing_errors.py (imported here, as they import this)

    async def issue(self, inv_id: str, tenant_id: str, year: int, read: Read) -> str | None:
        """See `InvoiceStore.issue` (`adapters/issuing.py`)."""
        from services.invoicer.adapters import issuing
        return await issuing.issue(self, inv_id, tenant_id, year, read)

    async def invoice_by_number(self, number: str) -> Doc | None:
        """See `InvoiceStore.invoice_by_number`."""
        return await self.invoices.find_one({"$or": [{"invoice_number": number},
                                                     {"_id": number}]})

    async def find_invoices(
        self, tenant_id: str | None = None, statuses: Sequence[str] | None = None
    ) -> list[Doc]:
        """See `InvoiceStore.find_invoices`."""
        query: Doc = {}
        if tenant_id:
            query["tenant_id"] = tenant_id
        if statuses is not None:
            query["status"] = {"$in": list(statuses)}
        return await self.invoices.find(query).sort("invoice_number", ASCENDING).to_list()

    async def change_status(
        self, inv_id: str, outcome: PaymentOutcome, at: datetime, cause: str
    ) -> InvoiceStatus | None:
        """See `InvoiceStore.change_status`."""
        from services.invoicer.adapters import invoices
        return await invoices.change_status(self, inv_id, outcome, at, cause)

    async def overdue_candidates(self, as_of: datetime) -> list[Doc]:
        """See `InvoiceStore.overdue_candidates`."""
        from services.invoicer.adapters import invoices
        return await invoices.overdue_candidates(self, as_of)

    async def move_to_overdue(self, inv_id: str) -> bool:
        """See `InvoiceStore.move_to_overdue`."""
        from services.invoicer.adapters import invoices
        return await invoices.move_to_overdue(self, inv_id)

    async def next_overdue_after(self, after: datetime) -> datetime | None:
        """See `InvoiceStore.next_overdue_after`."""
        from services.invoicer.adapters import invoices
        return await invoices.next_overdue_after(self, after)

    async def record_billing_error(
        self, tenant_id: str, period: Period, exc: BaseException, later_periods_waiting: int
    ) -> str:
        """See `InvoiceStore.record_billing_error`."""
        from services.invoicer.adapters import billing_errors
        return await billing_errors.record_billing_error(
            self.db, tenant_id, period, exc, later_periods_waiting)

    async def open_billing_errors(self) -> list[Doc]:
        """See `InvoiceStore.open_billing_errors`."""
        from services.invoicer.adapters import billing_errors
        return await billing_errors.open_billing_errors(self.db)

    async def count_open_billing_errors(self) -> int:
        """See `InvoiceStore.count_open_billing_errors`."""
        from services.invoicer.adapters import billing_errors
        return await billing_errors.count_open_billing_errors(self.db)


def config_key(tenant_id: str, version: int) -> str:
    """`_id` of a configuration version."""
    return f"{tenant_id}#{version}"


def config_version_of(doc: Doc) -> ConfigVersion:
    """The `ConfigVersion` of an `invoicer_configs` document."""
    return ConfigVersion(int(doc["version"]), BillingConfigSubmitted.model_validate(
        doc["command"]), bool(doc.get("scheduled")))


def tenant_config(doc: Doc) -> BillingConfigSubmitted:
    """The current configuration held in a tenant document."""
    return BillingConfigSubmitted.model_validate(doc["config"])
