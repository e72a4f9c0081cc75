"""What the admin pages show, shaped from the API's responses: an invoice's period as its
first and last day in the tenant's time zone, reconciliation rows and the messages shown after
a form that was not run (docs/portal.md, "Admin console")."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.api.models_reads import Reconciliation, TenantReconciliation
from services.common.invoice_document import period_days
from services.common.meters import meter_of

#: The invoice statuses a payment can still be recorded for.
UNPAID = ("pending_payment", "failed", "overdue")


def period_label(start: datetime, end: datetime, zone: str) -> str:
    """`2013-06-01 to 2013-06-30`: an invoice period `[start, end)` as its first and last
    calendar day in IANA zone `zone` (the end instant is the next period's first midnight)."""
    first, last = period_days(start, end, zone)
    return f"{first.isoformat()} to {last.isoformat()}"


@dataclass(frozen=True)
class ReconciliationRow:
    """One line of the usage reconciliation table (quantities as `meter quantity` text)."""

    tenant_id: str
    which: str
    period: str
    accepted: int
    aggregated: int
    quantity_aggregated: str
    quantity_billed: str
    invoice_number: str | None


def _quantities(by_meter: dict[str, str]) -> str:
    """`CPU 572.806084 vCPU-hours; Memory ...` (readable meter names with their units)."""
    shown = [(meter_of(key), q) for key, q in sorted(by_meter.items())]
    return "; ".join(f"{m.name} {q} {m.unit}" for m, q in shown) or "none"


def reconciliation_rows(tenants: Sequence[TenantReconciliation],
                        zones: Mapping[str, str]) -> list[ReconciliationRow]:
    """The current and the last invoiced period of every tenant, in that order; periods as
    days in the tenant's time zone (`zones`: tenant id -> IANA zone; UTC when unknown)."""
    rows = []
    for tenant in tenants:
        zone = zones.get(tenant.tenant_id, "UTC")
        parts: list[tuple[str, Reconciliation | None]] = [
            ("current", tenant.current), ("last invoiced", tenant.last_invoiced)]
        for which, part in parts:
            if part is None:
                continue
            rows.append(ReconciliationRow(
                tenant.tenant_id, which, period_label(part.period_start, part.period_end, zone),
                part.events_accepted_by_api, part.events_aggregated,
                _quantities(part.quantity_aggregated), _quantities(part.quantity_billed),
                part.invoice_number))
    return rows


#: Shown after a form whose token was used already, or that has no valid token.
RESUBMITTED = ("This form was submitted already (the first submission counts); nothing was "
               "done again.")
STALE_FORM = "This form is out of date; nothing was done. Reload the page and submit it again."
