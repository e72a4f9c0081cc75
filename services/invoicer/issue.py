"""Operator-issued invoices (`billing invoices issue`) and the guards that keep the invoiced
periods of a tenant one gapless, non-overlapping chain (docs/billing-periods.md, "Operator
issue").

An operator names a period by its local end date. The issue is refused, with the reason, when:
the tenant generates its invoices automatically (unless forced with a reason; a forced issue is
audited in `invoicer_audit`: who, when, why); no period of the tenant's chain ends that day;
that period has not ended at the billing clock; issuing it would overlap an invoiced period or
leave earlier periods unbilled; the period starts after the end of the tenant's cancelled
subscription (docs/plans.md, "Subscriptions"). Issuing the same period again is not an
error: nothing happens.
"""

from dataclasses import dataclass
from datetime import date, datetime

from contracts.base import utc_now
from services.invoicer.adapters.invoice_store import billable
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.cycle import issue_invoice
from services.invoicer.domain import invoice_id
from services.invoicer.periods import Period, local_date, local_midnight
from services.invoicer.versions import ConfigVersion, in_force, iter_chain


class IssueRefused(Exception):
    """An operator issue that would break a billing rule; the message says which and why."""


@dataclass(frozen=True)
class Forced:
    """An operator's override of the auto-generation guard: who (`actor`) and why (`reason`)."""

    actor: str
    reason: str


def _label(period: Period) -> str:
    return f"{period.start_date.isoformat()}..{period.end_date.isoformat()}"


def _next_periods(versions: list[ConfigVersion], start: datetime, end: date) -> list[Period]:
    """The chain's periods from `start` up to the first one ending on or after local `end`."""
    found: list[Period] = []
    for period in iter_chain(versions, start):
        found.append(period)
        if period.end_date >= end:
            return found
    return found  # pragma: no cover - iter_chain is endless


async def issue_for_period_end(
    store: InvoicerStore, tenant_id: str, end: date, *, as_of: datetime | None = None,
    forced: Forced | None = None,
) -> str | None:
    """Issue the invoice of `tenant_id`'s period ending on local date `end`, at billing clock
    `as_of` (default: now). Returns the new number, or None when that period is already
    invoiced. Raises `LookupError` for an unknown tenant and `IssueRefused` when a guard
    refuses (the message says why)."""
    clock = as_of or utc_now()
    tenant = await store.tenant(tenant_id)
    if tenant is None:
        raise LookupError(f"tenant {tenant_id!r} has no billing configuration")
    if tenant.get("auto_generate_invoices") and forced is None:
        raise IssueRefused(
            f"tenant {tenant_id!r} generates its invoices automatically; issue by hand only "
            "with --force --reason TEXT --actor ID")
    for doc in await store.invoices_of(tenant_id):
        if local_date(doc["period_end"], doc["timezone"]) == end:
            return None  # this very period is invoiced already
    versions, start = await store.schedule_of(tenant)
    end_at = local_midnight(end, in_force(versions, clock).command.timezone)
    if end_at > clock:  # checked first: no need to walk the schedule into the future
        raise IssueRefused(
            f"a period of {tenant_id!r} ending on {end.isoformat()} has not ended: it ends at "
            f"{end_at.isoformat()}, the billing clock is {clock.isoformat()}")
    if local_date(start, in_force(versions, start).command.timezone) >= end:
        if await store.last_invoiced_end(tenant_id) is None:
            raise IssueRefused(f"{end.isoformat()} is not after the start of the first period "
                               f"of {tenant_id!r} ({start.isoformat()})")
        raise IssueRefused(
            f"a period of {tenant_id!r} ending on {end.isoformat()} would overlap what is "
            f"already invoiced (invoiced up to {start.isoformat()})")
    periods = _next_periods(versions, start, end)
    period = periods[-1]
    if period.end_date != end:
        raise IssueRefused(
            f"no billing period of {tenant_id!r} ends on {end.isoformat()}; the next one to "
            f"invoice is {_label(periods[0])}")
    if len(periods) > 1:
        raise IssueRefused(
            f"issuing {_label(period)} would leave {periods[0].start_date.isoformat()}.."
            f"{period.start_date.isoformat()} of {tenant_id!r} unbilled; issue the period "
            f"{_label(periods[0])} first")
    if period.end > clock:
        raise IssueRefused(
            f"the period {_label(period)} of {tenant_id!r} has not ended: it ends at "
            f"{period.end.isoformat()}, the billing clock is {clock.isoformat()}")
    overlapping = await store.invoices_overlapping(tenant_id, period.start, period.end)
    if overlapping:
        raise IssueRefused(
            f"the period {_label(period)} of {tenant_id!r} overlaps invoice "
            f"{overlapping[0]['invoice_number']}")
    if not billable(tenant, start, period.start):
        raise IssueRefused(
            f"the subscription of {tenant_id!r} ended at {tenant['billing_ends_at'].isoformat()}"
            f": no period after its end is billed ({_label(period)}); start a subscription or "
            "submit a configuration to bill again")
    if forced is not None:
        await store.record_forced_issue(invoice_id(tenant_id, period.start_date), forced.actor,
                                        forced.reason, utc_now())
    number = await issue_invoice(store, tenant_id, period)
    if forced is not None and number is not None:
        await store.record_forced_issue(invoice_id(tenant_id, period.start_date), forced.actor,
                                        forced.reason, utc_now(), number)
    return number

