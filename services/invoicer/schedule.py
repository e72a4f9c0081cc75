"""Running the cycle against a billing clock, overdue transitions, and the next due instant.

`run_cycle(store, as_of)` issues every due invoice of auto-generating tenants in period-end
order across tenants (ties: tenant id), so invoice numbers follow issue order, then marks
unpaid invoices overdue once the clock passes the end of their due date (tenant zone).
"""

import logging
import time
from datetime import datetime
from typing import Any

from pymongo.errors import ConnectionFailure, DuplicateKeyError

from services.common.errors import RetryableError
from services.invoicer.adapters.batch_reads import schedules
from services.invoicer.adapters.billing_errors import BILLING_ERRORS_TOTAL
from services.invoicer.adapters.invoice_store import (
    InvoicerPorts,
    InvoiceStore,
    billable,
    schedule_of,
)
from services.invoicer.adapters.store import InvoicerStore, tenant_config
from services.invoicer.cycle import CycleReport
from services.invoicer.invoice_run import DEFAULT_BATCH, issue_due
from services.invoicer.issue import issue_for_period_end
from services.invoicer.metrics import CYCLE_SECONDS
from services.invoicer.periods import Period
from services.invoicer.subscription_rollover import roll_subscriptions
from services.invoicer.versions import ConfigVersion, chain_until, iter_chain

log = logging.getLogger(__name__)
Doc = dict[str, Any]
__all__ = ["due_periods", "issue_for_period_end", "mark_overdue", "next_due", "run_cycle"]


async def due_periods(store: InvoicerPorts, as_of: datetime) -> list[tuple[Period, str]]:
    """(period, tenant id) of every auto-generating tenant's period that ended at or before
    `as_of` and has no invoice yet, in issue order. Each tenant's periods continue its chain
    from the last invoiced period's end (docs/billing-periods.md, "The period chain"). On
    MongoDB the schedules of all tenants are read in three queries (`batch_reads.schedules`)."""
    due: list[tuple[Period, str]] = []
    if isinstance(store, InvoicerStore):
        async for tenant, versions, start in schedules(store):
            due += _due(tenant, versions, start, as_of)
    else:
        for tenant in await store.all_tenants():
            if tenant.get("auto_generate_invoices"):
                due += _due(tenant, *await schedule_of(store, tenant), as_of)
    due.sort(key=lambda item: (item[0].end, item[1]))
    return due


def _due(tenant: Doc, versions: list[ConfigVersion], start: datetime,
         as_of: datetime) -> list[tuple[Period, str]]:
    return [(period, tenant["_id"]) for period in chain_until(versions, start, as_of)
            if billable(tenant, start, period.start)]


async def mark_overdue(store: InvoiceStore, as_of: datetime) -> list[str]:
    """Move unpaid invoices whose due date ended (tenant zone) at or before `as_of` to
    `overdue`, each with its `InvoiceStatusChanged` in the same transaction; returns their ids.
    The event occurs at the overdue instant and has a deterministic id. One invoice that
    cannot be moved is logged and counted (`billing_invoicer_billing_errors_total`, reason
    `overdue_failed`) and the others still move; only a lost connection propagates."""
    marked: list[str] = []
    for doc in await store.overdue_candidates(as_of):
        try:
            if await store.move_to_overdue(doc["_id"]):
                marked.append(doc["_id"])
        except DuplicateKeyError:
            pass  # another process marked it
        except (ConnectionFailure, RetryableError):  # the database is unavailable
            raise
        except Exception:  # one broken invoice must not keep the others from overdue
            BILLING_ERRORS_TOTAL.labels(reason="overdue_failed").inc()
            log.exception("could not mark %s overdue (tried again next run)", doc["_id"],
                          extra={"tenant_id": doc.get("tenant_id")})
    return marked


async def run_cycle(store: InvoicerStore, as_of: datetime,
                    batch_size: int = DEFAULT_BATCH) -> CycleReport:
    """One run of the billing cycle at billing clock `as_of` (idempotent; safe to run from
    several processes at once).

    First the subscriptions whose period ended move on (`roll_subscriptions`: a scheduled
    downgrade or cancel takes effect, fresh limit windows). The due periods are issued in
    batches of up to `batch_size` (`invoice_run.issue_due`), numbered in due order. Each
    (tenant, period) is isolated: one that cannot be issued becomes a billing error, that
    tenant's later periods wait behind it (a tenant is invoiced in period order), every other
    tenant is invoiced, and overdue marking always runs.
    """
    started = time.perf_counter()
    report = CycleReport()
    await roll_subscriptions(store, as_of)
    await issue_due(store, await due_periods(store, as_of), report, batch_size)
    report.overdue = await mark_overdue(store, as_of)
    CYCLE_SECONDS.observe(time.perf_counter() - started)
    return report


async def next_due(store: InvoicerPorts, after: datetime) -> datetime | None:
    """The earliest instant > `after` at which the cycle has something to do: a period end of
    an auto-generating tenant, an unpaid invoice's overdue instant, or a credit grant."""
    candidates: list[datetime] = []
    for tenant in await store.all_tenants():
        config = tenant_config(tenant)
        candidates += [c.granted_at for c in config.credits if c.granted_at > after]
        if tenant.get("auto_generate_invoices"):
            versions, start = await schedule_of(store, tenant)
            for period in iter_chain(versions, start):
                if not billable(tenant, start, period.start):
                    break
                if period.end > after:
                    candidates.append(period.end)
                    break
    overdue = await store.next_overdue_after(after)
    candidates += [overdue] if overdue is not None else []
    return min(candidates, default=None)
