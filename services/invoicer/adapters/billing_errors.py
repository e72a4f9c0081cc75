"""Billing errors: the (tenant, period)s the cycle could not invoice, kept until issued.

Collection `invoicer_billing_errors` (owned by the invoicer), one document per tenant and
period, `_id` = the period's deterministic invoice id:

    tenant_id, period_start, period_end   the period (UTC instants)
    reason          short code (`billing_error_reason`): amount_out_of_range | unpriceable |
                    missing_configuration | contention | unexpected
    detail          the error, as text (at most 500 characters)
    attempts        cycle runs that failed on it
    later_periods_waiting   the tenant's later due periods held back behind it
    first_failed_at, last_failed_at   wall-clock instants
    status          "open", then "resolved" by the transaction that issues the period
    resolved_at, resolved_by   when, and the invoice number that resolved it

Each failure also increments `billing_invoicer_billing_errors_total{reason}` (Prometheus);
an invoice the cycle could not mark overdue counts there with reason `overdue_failed` (it is
only logged: the next run tries it again).
See docs/invoicing.md, "One period that cannot be priced".
"""

from decimal import DecimalException
from typing import Any

from prometheus_client import Counter
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from contracts.base import utc_now
from services.invoicer.domain import invoice_id
from services.invoicer.periods import Period
from services.invoicer.pricing import AmountOutOfRange

BILLING_ERRORS = "invoicer_billing_errors"
BILLING_ERRORS_TOTAL = Counter(
    "billing_invoicer_billing_errors_total",
    "Tenant periods the billing cycle could not invoice (or invoices it could not mark "
    "overdue: reason overdue_failed), by reason.",
    ["reason"],
)
Doc = dict[str, Any]
Db = AsyncDatabase[Doc]


class IssueContention(RuntimeError):
    """The tenant's ledger kept changing while an invoice was being issued (tried again on
    the next cycle run)."""


def billing_error_reason(exc: BaseException) -> str:
    """The short reason code of an issuing failure.

    `amount_out_of_range`: an amount outside BSON int64 (`AmountOutOfRange`, `OverflowError`);
    `unpriceable`: decimal arithmetic failed (e.g. quantizing a quantity too large for the
    pricing context); `missing_configuration`: `LookupError`; `contention`: `IssueContention`;
    `unexpected`: anything else.
    """
    if isinstance(exc, AmountOutOfRange | OverflowError):
        return "amount_out_of_range"
    if isinstance(exc, DecimalException | ArithmeticError):
        return "unpriceable"
    if isinstance(exc, LookupError):
        return "missing_configuration"
    if isinstance(exc, IssueContention):
        return "contention"
    return "unexpected"


def error_detail(exc: BaseException) -> str:
    """The error as text for operators (at most 500 characters)."""
    if isinstance(exc, DecimalException):  # its text is only the signal's class list
        return (f"{type(exc).__name__}: a quantity or amount of this period cannot be computed "
                f"exactly (a usage total far outside the priced range?)")
    return f"{type(exc).__name__}: {exc}"[:500]


async def record_billing_error(
    db: Db, tenant_id: str, period: Period, exc: BaseException, later_periods_waiting: int
) -> str:
    """Record (or update) the open billing error of `tenant_id`'s `period` and count it in the
    metric; returns the reason code. Idempotent per period: a repeated failure bumps
    `attempts`."""
    reason = billing_error_reason(exc)
    now = utc_now()
    await db[BILLING_ERRORS].update_one(
        {"_id": invoice_id(tenant_id, period.start_date)},
        {"$set": {"tenant_id": tenant_id, "period_start": period.start,
                  "period_end": period.end, "reason": reason,
                  "detail": error_detail(exc), "last_failed_at": now,
                  "later_periods_waiting": later_periods_waiting, "status": "open"},
         "$setOnInsert": {"first_failed_at": now},
         "$unset": {"resolved_at": "", "resolved_by": ""},
         "$inc": {"attempts": 1}},
        upsert=True,
    )
    BILLING_ERRORS_TOTAL.labels(reason=reason).inc()
    return reason


async def resolve_billing_error(
    db: Db, inv_id: str, invoice_number: str, session: AsyncClientSession
) -> None:
    """Mark the open billing error of invoice id `inv_id` resolved by `invoice_number`; meant
    to run inside the transaction that issues it (nothing happens when there is none)."""
    await db[BILLING_ERRORS].update_one(
        {"_id": inv_id, "status": "open"},
        {"$set": {"status": "resolved", "resolved_at": utc_now(),
                  "resolved_by": invoice_number}},
        session=session,
    )


async def open_billing_errors(db: Db) -> list[Doc]:
    """Open billing errors, by period start then tenant id."""
    cursor = db[BILLING_ERRORS].find({"status": "open"})
    return await cursor.sort([("period_start", ASCENDING), ("tenant_id", ASCENDING)]).to_list()


async def count_open_billing_errors(db: Db) -> int:
    """How many billing errors are open."""
    return await db[BILLING_ERRORS].count_documents({"status": "open"})
