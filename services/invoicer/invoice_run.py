"""The invoice run: every due (tenant, period) of a cycle issued in batches, each tenant
isolated (docs/invoicing.md, "The invoice run").

The due items (sorted by period end, then tenant id) are cut into batches of at most
`batch_size` items with at most one period per tenant. The usage of `READ_BATCHES` batches is
read at once (`batch_issuing.prefetch`), the next group's while this group's transactions run
(at most one group ahead); transactions run one after the other, so invoice numbers follow
due order. An item the batch path does not handle is issued by the per-tenant path
(`cycle.issue_isolated`) at its place in that order; a batch whose transaction fails (a
ledger moved, another process issued one of its invoices, anything else) is issued item by
item the same way. A failing item is a billing error and
holds the tenant's later periods; every other tenant goes on. Only a lost database connection
propagates.
"""

import asyncio
import logging
from collections.abc import Sequence
from contextlib import suppress

from pymongo.errors import ConnectionFailure

from services.common.errors import RetryableError
from services.invoicer.adapters.batch_issuing import issue_batch, prefetch
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.batch_pricing import BatchItem, Prefetched
from services.invoicer.cycle import CycleReport, issue_isolated
from services.invoicer.metrics import ISSUE_BATCH_SIZE
from services.invoicer.periods import Period

log = logging.getLogger(__name__)
#: Items of one batch transaction unless configured (`invoicer_issue_batch`).
DEFAULT_BATCH = 200
#: Batches whose usage is read at once, while the batches before them issue: one query for
#: many tenants' usage (10,000 items at the default batch size) reads each usage document
#: once; reading per batch would cost one long `$in` query (or one scan) per batch.
READ_BATCHES = 50


def cut(due: Sequence[tuple[Period, str]], size: int) -> list[list[BatchItem]]:
    """`due` (in order) as batches of at most `size` items, at most one per tenant, order
    kept; each item knows how many later due periods its tenant has (`waiting`)."""
    later: dict[str, int] = {}
    for _, tenant_id in due:
        later[tenant_id] = later.get(tenant_id, 0) + 1
    batches: list[list[BatchItem]] = [[]]
    tenants: set[str] = set()
    for period, tenant_id in due:
        later[tenant_id] -= 1
        if len(batches[-1]) >= size or tenant_id in tenants:
            batches.append([])
            tenants = set()
        batches[-1].append(BatchItem(period, tenant_id, later[tenant_id]))
        tenants.add(tenant_id)
    return [b for b in batches if b]


def groups(batches: list[list[BatchItem]], read_batches: int) -> list[list[list[BatchItem]]]:
    """`batches` in order, `read_batches` at a time: the batches whose usage is read at once."""
    step = max(1, read_batches)
    return [batches[i:i + step] for i in range(0, len(batches), step)]


async def issue_due(store: InvoicerStore, due: Sequence[tuple[Period, str]],
                    report: CycleReport, batch_size: int = DEFAULT_BATCH) -> None:
    """Issue every item of `due` (see the module docstring); numbers go to `report.issued`,
    the invoice ids of failed periods to `report.failed`."""
    held: set[str] = set()
    ahead: asyncio.Task[dict[str, Prefetched]] | None = None
    todo = groups(cut(due, max(1, batch_size)), READ_BATCHES)
    try:
        for index, group in enumerate(todo):
            current = ahead or asyncio.create_task(prefetch(store, _items(group)))
            ahead = None
            try:
                pre: dict[str, Prefetched] | None = await current
            except (ConnectionFailure, RetryableError):
                raise
            except Exception:
                log.exception("usage of %d due periods could not be read: issued one by one",
                              len(_items(group)))
                pre = None
            if index + 1 < len(todo):
                ahead = asyncio.create_task(prefetch(store, _items(todo[index + 1])))
            for batch in group:
                await _issue_batch(store, batch, pre, report, held)
    finally:
        if ahead is not None:
            ahead.cancel()
            with suppress(BaseException):
                await ahead


def _items(group: list[list[BatchItem]]) -> list[BatchItem]:
    return [item for batch in group for item in batch]


async def _one(store: InvoicerStore, item: BatchItem, report: CycleReport,
               held: set[str]) -> None:
    if not await issue_isolated(store, item.tenant_id, item.period, report, item.waiting):
        held.add(item.tenant_id)


async def _issue_batch(store: InvoicerStore, batch: list[BatchItem],
                       pre: dict[str, Prefetched] | None, report: CycleReport,
                       held: set[str]) -> None:
    """One batch: its transaction for as long a prefix as the batch path handles, the item
    that stopped it per tenant, then the rest likewise; per tenant throughout after a failed
    transaction."""
    remaining = batch
    while remaining := [i for i in remaining if i.tenant_id not in held]:
        if pre is None:
            for item in remaining:
                await _one(store, item, report, held)
            return
        try:
            outcome = await issue_batch(store, remaining, pre)
        except (ConnectionFailure, RetryableError):
            raise
        except Exception as exc:
            log.warning("a batch transaction of %d periods failed (%s: %s): issued one by one",
                        len(remaining), type(exc).__name__, exc)
            pre = None
            continue
        ISSUE_BATCH_SIZE.observe(len(outcome.issued))
        report.issued += [number for _, number in outcome.issued]
        if outcome.issued:
            log.info("issued %d invoices in one transaction (%s..%s)", len(outcome.issued),
                     outcome.issued[0][1], outcome.issued[-1][1])
        if outcome.stop is None:
            return
        await _one(store, remaining[outcome.stop], report, held)
        remaining = remaining[outcome.stop + 1:]
