"""Helpers of the invoice run's tests (no tests here): the cycle as it ran before batches
(every due period issued by its own transaction), a snapshot of the invoicer's collections to
run two cycles from the same state, and what of them the two ways must agree on."""

from collections import Counter
from datetime import datetime
from typing import Any

from prometheus_client import REGISTRY

from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.cycle import CycleReport, issue_isolated
from services.invoicer.schedule import due_periods, mark_overdue
from services.invoicer.subscription_rollover import roll_subscriptions

Doc = dict[str, Any]
#: Fields that differ by construction between two issues of the same invoice: wall-clock
#: instants of the issuing host (`created_at` of an invoice or outbox entry, `priced_at` of a
#: billed record, the outbox `seq` taken from the clock; order is compared instead).
WALL_CLOCK = {"invoicer_invoices": {"created_at"}, "invoicer_billed_usage": {"priced_at"},
              "invoicer_outbox": {"created_at", "seq"}}


async def one_by_one(store: InvoicerStore, as_of: datetime) -> CycleReport:
    """The cycle issuing each due period in its own transaction (`issue_isolated`), in due
    order, a failed tenant's later periods held: the reference the batches must equal."""
    report = CycleReport()
    await roll_subscriptions(store, as_of)
    due = await due_periods(store, as_of)
    remaining = Counter(tenant_id for _, tenant_id in due)
    held: set[str] = set()
    for period, tenant_id in due:
        remaining[tenant_id] -= 1
        if tenant_id in held:
            continue
        if not await issue_isolated(store, tenant_id, period, report, remaining[tenant_id]):
            held.add(tenant_id)
    report.overdue = await mark_overdue(store, as_of)
    return report


async def snapshot(store: InvoicerStore) -> dict[str, list[Doc]]:
    """Every document of the invoicer's collections, by collection."""
    names = [n for n in await store.db.list_collection_names() if n.startswith("invoicer_")]
    return {n: await store.db[n].find({}).sort("_id", 1).to_list() for n in sorted(names)}


async def restore(store: InvoicerStore, saved: dict[str, list[Doc]]) -> None:
    """Bring the invoicer's collections back to `saved` (indexes stay)."""
    for name in await store.db.list_collection_names():
        if name.startswith("invoicer_"):
            await store.db[name].delete_many({})
            if saved.get(name):
                await store.db[name].insert_many(saved[name])


async def outcome(store: InvoicerStore) -> dict[str, list[Doc]]:
    """The invoicer's collections without the `WALL_CLOCK` fields and billing errors' own
    timestamps; the outbox in publishing order."""
    found = await snapshot(store)
    found["invoicer_outbox"] = await store.db["invoicer_outbox"].find({}).sort(
        "seq", 1).to_list()
    skip = {"invoicer_billing_errors": {"first_failed_at", "last_failed_at", "resolved_at"},
            **WALL_CLOCK}
    return {name: [{k: v for k, v in d.items() if k not in skip.get(name, set())}
                   for d in docs] for name, docs in found.items()}


def batched_invoices() -> float:
    """Invoices issued by batch transactions so far in this process (the histogram's sum)."""
    return REGISTRY.get_sample_value("billing_invoicer_issue_batch_size_sum") or 0.0
