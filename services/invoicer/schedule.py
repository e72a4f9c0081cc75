"""Running the cycle against a billing clock, overdue transitions, and the next due instant.

`run_cycle(store, as_of)` issues every due invoice of auto-generating tenants in period-end
order across tenants (ties: tenant id), so invoice numbers follow issue order, then marks
unpaid invoices overdue once the clock passes the end of their due date (tenant zone).
"""

import logging
from collections import Counter
from datetime import datetime

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConnectionFailure, DuplicateKeyError

from contracts import TOPIC_INVOICE
from contracts.invoices import InvoiceStatus
from services.common.outbox import add_to_outbox
from services.invoicer.adapters.billing_errors import BILLING_ERRORS_TOTAL
from services.invoicer.adapters.store import InvoicerStore, tenant_config
from services.invoicer.cycle import CycleReport, issue_isolated
from services.invoicer.domain import AWAITING_PAYMENT
from services.invoicer.issue import issue_for_period_end
from services.invoicer.names import OUTBOX
from services.invoicer.periods import Period
from services.invoicer.records import status_event
from services.invoicer.versions import chain_until, iter_chain

log = logging.getLogger(__name__)
__all__ = ["due_periods", "issue_for_period_end", "mark_overdue", "next_due", "run_cycle"]


async def due_periods(store: InvoicerStore, as_of: datetime) -> list[tuple[Period, str]]:
    """(period, tenant id) of every auto-generating tenant's period that ended at or before
    `as_of` and has no invoice yet, in issue order. Each tenant's periods continue its chain
    from the last invoiced period's end (docs/billing-periods.md, "The period chain")."""
    due: list[tuple[Period, str]] = []
    for tenant in await store.all_tenants():
        if not tenant.get("auto_generate_invoices"):
            continue
        versions, start = await store.schedule_of(tenant)
        due += [(period, tenant["_id"]) for period in chain_until(versions, start, as_of)]
    due.sort(key=lambda item: (item[0].end, item[1]))
    return due


async def mark_overdue(store: InvoicerStore, as_of: datetime) -> list[str]:
    """Move unpaid invoices whose due date ended (tenant zone) at or before `as_of` to
    `overdue`, each with its `InvoiceStatusChanged` in the same transaction; returns their ids.
    The event occurs at the overdue instant and has a deterministic id. One invoice that
    cannot be moved is logged and counted (`billing_invoicer_billing_errors_total`, reason
    `overdue_failed`) and the others still move; only a lost connection propagates."""
    marked: list[str] = []
    query = {"status": {"$in": list(AWAITING_PAYMENT)}, "overdue_at": {"$lte": as_of}}
    candidates = await store.invoices.find(query).sort(
        [("overdue_at", ASCENDING), ("tenant_id", ASCENDING)]).to_list()
    for doc in candidates:
        async def txn(session: AsyncClientSession, doc: dict = doc) -> bool:  # type: ignore[type-arg]
            current = await store.invoices.find_one({"_id": doc["_id"]}, session=session)
            if current is None or current["status"] not in AWAITING_PAYMENT:
                return False
            at = current["overdue_at"]
            await store.invoices.update_one(
                {"_id": doc["_id"], "status": current["status"]},
                {"$set": {"status": InvoiceStatus.overdue},
                 "$push": {"history": {"status": InvoiceStatus.overdue, "at": at,
                                       "cause": "clock"}}},
                session=session,
            )
            event = status_event({**current, "status": InvoiceStatus.overdue},
                                 InvoiceStatus(current["status"]), InvoiceStatus.overdue,
                                 "clock", at, reason="due date passed without payment")
            await add_to_outbox(store.db, OUTBOX, [(event, TOPIC_INVOICE, doc["tenant_id"])],
                                session)
            return True

        try:
            if await store.transaction(txn):
                marked.append(doc["_id"])
        except DuplicateKeyError:
            pass  # another process marked it
        except ConnectionFailure:
            raise
        except Exception:  # one broken invoice must not keep the others from overdue
            BILLING_ERRORS_TOTAL.labels(reason="overdue_failed").inc()
            log.exception("could not mark %s overdue (tried again next run)", doc["_id"],
                          extra={"tenant_id": doc.get("tenant_id")})
    return marked


async def run_cycle(store: InvoicerStore, as_of: datetime) -> CycleReport:
    """One run of the billing cycle at billing clock `as_of` (idempotent; safe to run from
    several processes at once).

    Each (tenant, period) is isolated (`issue_isolated`): one that cannot be issued becomes a
    billing error, that tenant's later periods wait behind it (a tenant is invoiced in period
    order), every other tenant is invoiced, and overdue marking always runs.
    """
    report = CycleReport()
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


async def next_due(store: InvoicerStore, after: datetime) -> datetime | None:
    """The earliest instant > `after` at which the cycle has something to do: a period end of
    an auto-generating tenant, an unpaid invoice's overdue instant, or a credit grant."""
    candidates: list[datetime] = []
    for tenant in await store.all_tenants():
        config = tenant_config(tenant)
        candidates += [c.granted_at for c in config.credits if c.granted_at > after]
        if tenant.get("auto_generate_invoices"):
            versions, start = await store.schedule_of(tenant)
            for period in iter_chain(versions, start):
                if period.end > after:
                    candidates.append(period.end)
                    break
    query = {"status": {"$in": list(AWAITING_PAYMENT)}, "overdue_at": {"$gt": after}}
    first = await store.invoices.find(query).sort("overdue_at", ASCENDING).limit(1).to_list()
    candidates += [d["overdue_at"] for d in first]
    return min(candidates, default=None)
