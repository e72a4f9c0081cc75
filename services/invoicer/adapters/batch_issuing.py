"""The invoice run's batch transaction in MongoDB: many tenants' invoices, numbers, billed
records, ledgers and outbox entries in one commit (docs/invoicing.md, "The invoice run").

`prefetch` reads, outside any transaction, each item's usage marker and THEN its usage (one
query each for the whole batch, `UsageSource.markers` / `totals_many`), and asks which tenants
have late usage. `issue_batch` then runs one transaction: the bulk reads
(`batch_reads.read_batch`), the pricing of the items in due order (`batch_pricing.price_batch`)
and the writes, each guarded as in the per-tenant issue (`adapters/issuing.py`):

    invoicer_counters        one `$inc` per year present, by the number of its invoices;
                             numbers follow due order
    invoicer_invoices        `insert_many` (unique `_id` and `invoice_number`)
    invoicer_billed_usage    `insert_many`
    invoicer_coupon_redemptions  one update per code, only if its count is still as read
    invoicer_tenants         one `bulk_write` of ledger updates guarded by `ledger_rev`: any
                             that matches nothing aborts the transaction (`LedgerMoved`)
    invoicer_subscriptions   `invoiced_through` of the subscribed tenants
    invoicer_outbox          the `InvoiceIssued` events, in due order
    invoicer_billing_errors  the open billing errors of the issued periods, resolved

An aborted transaction writes nothing and consumes no number; the caller then issues the items
one by one (`cycle.issue_isolated`).
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from contracts import TOPIC_INVOICE
from services.common.outbox import add_to_outbox
from services.invoicer.adapters.batch_reads import (
    BatchReads,
    billed_of,
    prepare_batch,
    read_batch,
)
from services.invoicer.adapters.billing_errors import resolve_billing_error
from services.invoicer.adapters.issuing import ledger_update, take_numbers
from services.invoicer.adapters.ledger import take_redemption
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.adapters.subscriptions import SUBSCRIPTIONS, invoiced_update
from services.invoicer.adapters.usage import UsageSource
from services.invoicer.batch_pricing import (
    BatchItem,
    LateCheck,
    MissingMarker,
    Prefetched,
    late_check,
    price_batch,
)
from services.invoicer.domain import invoice_number
from services.invoicer.late_usage import changed_periods
from services.invoicer.ledger import LedgerMoved
from services.invoicer.names import OUTBOX
from services.invoicer.records import IssueDraft, billed_records, build_invoice, issued_event

Doc = dict[str, Any]
#: Late-usage questions (`UsageSource.changed_since`) asked at once.
LATE_QUERIES = 16
#: Tenants per query of billed records: a long `$in` list is slow on some servers.
BILLED_CHUNK = 200


@dataclass
class BatchOutcome:
    """What one batch transaction committed: (invoice id, number) issued in due order, invoice
    ids found issued already, and the index of the item left to the per-tenant path (None:
    none)."""

    issued: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    stop: int | None = None


async def _changed(usage: UsageSource, asks: list[tuple[BatchItem, LateCheck]],
                   markers: dict[str, int]) -> list[bool]:
    """For each (item, check), whether usage of a billed period changed after that period's
    own marker, asked as the per-tenant path asks (`late_usage.changed_periods`) with the
    tenant's marker read before (`markers`), at most `LATE_QUERIES` questions at once."""
    gate = asyncio.Semaphore(LATE_QUERIES)

    async def ask(item: BatchItem, check: LateCheck) -> bool:
        async def since(start: datetime, end: datetime, marker: int) -> bool:
            async with gate:
                return await usage.changed_since(item.tenant_id, start, end, marker)

        return bool(await changed_periods(check.periods, item.period.start, since,
                                          current=markers.get(item.tenant_id, 0), first=True))

    return list(await asyncio.gather(*(ask(i, c) for i, c in asks)))


async def _late(usage: UsageSource, items: Sequence[BatchItem], markers: dict[str, int],
                billed: dict[str, list[Doc]]) -> dict[str, tuple[LateCheck | None, bool]]:
    """By invoice id: the item's `LateCheck` over `billed` and whether it has late usage; a
    record without a marker always counts as late (per-tenant path)."""
    found: dict[str, tuple[LateCheck | None, bool]] = {}
    asks: list[tuple[BatchItem, LateCheck]] = []
    for item in items:
        try:
            check = late_check(item, billed.get(item.tenant_id, []))
        except MissingMarker:
            found[item.invoice_id] = (None, True)
            continue
        found[item.invoice_id] = (check, False)
        if check is not None:
            asks.append((item, check))
    for (item, check), changed in zip(asks, await _changed(usage, asks, markers), strict=True):
        found[item.invoice_id] = (check, changed)
    return found


async def prefetch(store: InvoicerStore, items: Sequence[BatchItem]) -> dict[str, Prefetched]:
    """Each item's usage read outside any transaction, by invoice id: every tenant's marker
    first, then the periods' totals (docs/usage.md#sequence), each with one bulk read for all
    `items`; then the late-usage question of the tenants with billed periods (their billed
    records read `BILLED_CHUNK` tenants at a time). Also creates what the transactions only
    `$inc` (`batch_reads.prepare_batch`). Raises what the reads raise."""
    tenant_ids = list(dict.fromkeys(i.tenant_id for i in items))
    await prepare_batch(store, {i.period.end_date.year for i in items})
    markers = await store.usage.markers(tenant_ids)  # before any usage is read
    requests = [(i.tenant_id, i.period.start, i.period.end) for i in items]
    totals = await store.usage.totals_many(requests)
    billed: dict[str, list[Doc]] = {}
    for start in range(0, len(tenant_ids), BILLED_CHUNK):
        billed |= await billed_of(store, tenant_ids[start:start + BILLED_CHUNK])
    late = await _late(store.usage, items, markers, billed)
    return {i.invoice_id: Prefetched(markers.get(i.tenant_id, 0), totals[r], *late[i.invoice_id])
            for i, r in zip(items, requests, strict=True)}


async def _recheck(store: InvoicerStore, items: Sequence[BatchItem],
                   pre: dict[str, Prefetched], reads: BatchReads) -> dict[str, bool]:
    """Late usage decided again for the items whose billed records, as read in the
    transaction, are not those `prefetch` asked about (e.g. the previous period, issued by
    the batch before): by invoice id."""
    moved = [i for i in items if _check(i, reads) != pre[i.invoice_id].check]
    markers = {i.tenant_id: pre[i.invoice_id].marker for i in moved}
    return {inv_id: late for inv_id, (_, late) in
            (await _late(store.usage, moved, markers, reads.billed)).items()}


def _check(item: BatchItem, reads: BatchReads) -> LateCheck | None | MissingMarker:
    try:
        return late_check(item, reads.billed.get(item.tenant_id, []))
    except MissingMarker as exc:
        return exc


async def _numbers(store: InvoicerStore, session: AsyncClientSession,
                   drafts: Sequence[IssueDraft]) -> list[str]:
    """The drafts' invoice numbers in order: one `$inc` of each year's counter by its count."""
    years = [d.period.end_date.year for d in drafts]
    next_seq: dict[int, int] = {}
    for year in sorted(set(years)):
        next_seq[year] = await take_numbers(store, session, year, years.count(year))
    numbers = []
    for year in years:
        numbers.append(invoice_number(year, next_seq[year]))
        next_seq[year] += 1
    return numbers


async def _write(store: InvoicerStore, session: AsyncClientSession, drafts: list[IssueDraft],
                 numbers: list[str], redemptions: dict[str, tuple[int, list[str]]],
                 reads: BatchReads) -> None:
    """Every write of the batch, in `session` (see the module docstring)."""
    docs = [build_invoice(d, n) for d, n in zip(drafts, numbers, strict=True)]
    await store.invoices.insert_many(docs, ordered=True, session=session)
    records = [r for d in drafts for r in billed_records(d)]
    if records:
        await store.billed.insert_many(records, ordered=True, session=session)
    for code, (seen, takers) in sorted(redemptions.items()):
        await take_redemption(store.db, code, takers, seen, session)
    ledgers = [UpdateOne(*ledger_update(d, n)) for d, n in zip(drafts, numbers, strict=True)]
    written = await store.tenants.bulk_write(ledgers, ordered=True, session=session)
    if written.modified_count != len(ledgers):
        raise LedgerMoved("a tenant ledger of the batch moved")  # aborts: nothing is written
    subscribed = [UpdateOne(*invoiced_update(d.tenant_id, d.period.end))
                  for d in drafts if d.tenant_id in reads.subscriptions]
    if subscribed:
        await store.db[SUBSCRIPTIONS].bulk_write(subscribed, ordered=True, session=session)
    await add_to_outbox(store.db, OUTBOX,
                        [(issued_event(doc), TOPIC_INVOICE, doc["tenant_id"]) for doc in docs],
                        session)
    for doc in docs:
        if doc["_id"] in reads.open_errors:
            await resolve_billing_error(store.db, doc["_id"], doc["invoice_number"], session)


async def issue_batch(store: InvoicerStore, items: Sequence[BatchItem],
                      pre: dict[str, Prefetched]) -> BatchOutcome:
    """Issue the longest prefix of `items` (due order, at most one per tenant; `pre` read by
    `prefetch`, which also created the counters) the batch path handles, in one transaction
    (retried by the driver on transient errors, everything read again). Raises `LedgerMoved`
    when a guard missed, `BulkWriteError` on a duplicate invoice (another process),
    `DependencyUnavailable` without the database: nothing is written then."""
    tenant_ids = [i.tenant_id for i in items]

    async def txn(session: AsyncClientSession) -> BatchOutcome:
        reads = await read_batch(store, session, tenant_ids, [i.invoice_id for i in items])
        plan = price_batch(items, pre, reads, await _recheck(store, items, pre, reads))
        if not plan.drafts:
            return BatchOutcome([], plan.skipped, plan.stop)
        numbers = await _numbers(store, session, plan.drafts)
        await _write(store, session, plan.drafts, numbers, plan.redemptions, reads)
        return BatchOutcome([(d.invoice_id, n) for d, n in zip(plan.drafts, numbers, strict=True)],
                            plan.skipped, plan.stop)

    return await store.transaction(txn)
