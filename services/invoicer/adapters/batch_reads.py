"""The invoice run's bulk reads: what the per-tenant issue reads with one query per tenant,
read for a whole batch of tenants with one `$in` query per collection (docs/invoicing.md,
"The invoice run").

`read_batch` runs inside the batch's issuing transaction (its snapshot, like
`cycle.read_and_price`); `billed_of` is also read before it, outside, to decide which tenants
need their earlier periods' usage read again; `schedules` feeds the due list.
"""

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from services.invoicer.adapters.billing_errors import BILLING_ERRORS
from services.invoicer.adapters.invoice_store import schedule_from
from services.invoicer.adapters.ledger import COUPON_REDEMPTIONS, ensure_coupon_count
from services.invoicer.adapters.store import InvoicerStore, config_version_of, tenant_config
from services.invoicer.adapters.subscriptions import SUBSCRIPTIONS
from services.invoicer.domain import invoice_counter
from services.invoicer.versions import ConfigVersion

Doc = dict[str, Any]
Session = AsyncClientSession | None
#: The fields of a tenant document its schedule needs (`invoice_store.schedule_from`).
SCHEDULE_FIELDS = {"auto_generate_invoices": 1, "version": 1, "billing_ends_at": 1,
                   "billing_resumes_at": 1}
#: The fields of a billed-usage record that say whether it moved (schema in `late_usage`).
BILLED_FIELDS = {"tenant_id": 1, "period_start": 1, "period_end": 1, "rev": 1,
                 "usage_marker": 1}


@dataclass
class BatchReads:
    """Everything a batch's transaction reads, by tenant id: the tenant documents (ledger
    included), configuration versions (by number), the tenants' invoices (`_id`, `currency`,
    `period_start`, `period_end`), billed-usage records (`BILLED_FIELDS`), subscription
    documents; by coupon code, its redemption count; the ids of open billing errors."""

    tenants: dict[str, Doc] = field(default_factory=dict)
    versions: dict[str, list[ConfigVersion]] = field(default_factory=dict)
    invoices: dict[str, list[Doc]] = field(default_factory=dict)
    billed: dict[str, list[Doc]] = field(default_factory=dict)
    subscriptions: dict[str, Doc] = field(default_factory=dict)
    coupon_counts: dict[str, int] = field(default_factory=dict)
    open_errors: set[str] = field(default_factory=set)


def _by_tenant(docs: Iterable[Doc]) -> dict[str, list[Doc]]:
    found: dict[str, list[Doc]] = {}
    for doc in docs:
        found.setdefault(doc["tenant_id"], []).append(doc)
    return found


async def billed_of(store: InvoicerStore, tenant_ids: Sequence[str],
                    session: Session = None) -> dict[str, list[Doc]]:
    """The tenants' billed-usage records (`BILLED_FIELDS`), each tenant's by `_id`."""
    cursor = store.billed.find({"tenant_id": {"$in": list(tenant_ids)}}, BILLED_FIELDS,
                               session=session).sort("_id", ASCENDING)
    return _by_tenant(await cursor.to_list())


def coupon_codes(tenant: Doc, versions: Sequence[ConfigVersion]) -> set[str]:
    """Every coupon code that may price a period of the tenant: any version's, the current
    configuration's, the redeemed catalog coupon's (`ledger.coupon_in_effect`)."""
    codes = {v.command.coupon.code for v in versions if v.command.coupon is not None}
    current = tenant_config(tenant).coupon
    codes |= {current.code} if current else set()
    if tenant.get("redeemed_coupon"):
        codes.add(tenant["redeemed_coupon"]["code"])
    return codes


async def read_batch(store: InvoicerStore, session: AsyncClientSession,
                     tenant_ids: Sequence[str], invoice_ids: Sequence[str]) -> BatchReads:
    """What the batch of `tenant_ids` (issuing `invoice_ids`) reads in `session`: seven
    queries whatever the batch's size."""
    ids = list(tenant_ids)
    reads = BatchReads()
    async for doc in store.tenants.find({"_id": {"$in": ids}}, session=session):
        reads.tenants[doc["_id"]] = doc
    configs = store.configs.find({"tenant_id": {"$in": ids}}, session=session).sort(
        [("tenant_id", ASCENDING), ("version", ASCENDING)])
    async for doc in configs:
        reads.versions.setdefault(doc["tenant_id"], []).append(config_version_of(doc))
    reads.invoices = _by_tenant(await store.invoices.find(
        {"tenant_id": {"$in": ids}},
        {"tenant_id": 1, "currency": 1, "period_start": 1, "period_end": 1},
        session=session).sort("period_start", ASCENDING).to_list())
    reads.billed = await billed_of(store, ids, session)
    async for doc in store.db[SUBSCRIPTIONS].find({"_id": {"$in": ids}}, session=session):
        reads.subscriptions[doc["_id"]] = doc
    codes = sorted({code for t_id, t in reads.tenants.items()
                    for code in coupon_codes(t, reads.versions.get(t_id, []))})
    if codes:
        async for doc in store.db[COUPON_REDEMPTIONS].find({"_id": {"$in": codes}},
                                                           session=session):
            reads.coupon_counts[doc["_id"]] = int(doc["redemptions"])
    errors = store.db[BILLING_ERRORS].find({"_id": {"$in": list(invoice_ids)}, "status": "open"},
                                           {"_id": 1}, session=session)
    reads.open_errors = {doc["_id"] async for doc in errors}
    return reads


async def prepare_batch(store: InvoicerStore, years: Iterable[int]) -> None:
    """Create, outside any transaction, the documents the batch transactions only `$inc`: the
    invoice counters of `years` and the redemption count of every coupon code a configuration
    version or a redeemed catalog coupon names (as `issuing._prepare` does for one tenant).
    A code without its count (one that appears later) is left by its batch to the per-tenant
    path, which creates it."""
    for year in sorted(set(years)):
        await store.ensure_counter(invoice_counter(year))
    codes = set(await store.configs.distinct("command.coupon.code"))  # current ones included
    codes |= set(await store.tenants.distinct("redeemed_coupon.code"))
    codes.discard(None)
    existing = set(await store.db[COUPON_REDEMPTIONS].distinct("_id"))
    for code in sorted(codes - existing):
        await ensure_coupon_count(store.db, code)


async def schedules(
    store: InvoicerStore,
) -> AsyncIterator[tuple[Doc, list[ConfigVersion], datetime]]:
    """(tenant, versions, next period start) as `invoice_store.schedule_of` gives them, for
    every tenant that generates its invoices automatically, from three queries over all
    tenants (the tenants' schedule fields; the end of each tenant's latest invoiced period;
    configuration versions, streamed by tenant so only one tenant's versions are held at a
    time): the cycle needs nearly every tenant, and a long `$in` list is slow on some servers.
    The tenant documents carry only `SCHEDULE_FIELDS` (a tenant without recorded versions is
    read whole)."""
    cursor = store.tenants.find({"auto_generate_invoices": True}, SCHEDULE_FIELDS)
    by_id = {t["_id"]: t async for t in cursor}
    last_end: dict[str, datetime] = {}
    pipeline: list[Doc] = [  # the chain has no overlap: the latest start ends last
        {"$sort": {"tenant_id": 1, "period_start": 1}},
        {"$group": {"_id": "$tenant_id", "end": {"$last": "$period_end"}}},
    ]
    async for doc in await store.invoices.aggregate(pipeline):
        if doc["_id"] in by_id:
            last_end[doc["_id"]] = doc["end"]
    current: str | None = None
    versions: list[ConfigVersion] = []
    configs = store.configs.find({}).sort([("tenant_id", ASCENDING), ("version", ASCENDING)])
    async for doc in configs:
        tenant_id = doc["tenant_id"]
        if tenant_id != current:
            if current in by_id:
                yield _schedule(by_id.pop(current), versions, last_end)
            current, versions = tenant_id, []
        if tenant_id in by_id:
            versions.append(config_version_of(doc))
    if current in by_id:
        yield _schedule(by_id.pop(current), versions, last_end)
    for tenant_id in sorted(by_id):  # tenants without a recorded version: their current one
        whole = await store.tenant(tenant_id)
        if whole is not None:
            yield _schedule(whole, [], last_end)


def _schedule(tenant: Doc, versions: list[ConfigVersion], last_end: dict[str, datetime]
              ) -> tuple[Doc, list[ConfigVersion], datetime]:
    return (tenant, *schedule_from(tenant, versions, last_end.get(tenant["_id"])))
