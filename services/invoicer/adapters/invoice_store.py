"""`InvoiceStore`: the invoices as the use cases read and write them. The MongoDB
implementation is `InvoicerStore` (`invoicer_invoices`, `invoicer_counters`,
`invoicer_billed_usage`, `invoicer_billing_errors`, `invoicer_outbox`; the transactions are in
`adapters/issuing.py` and `adapters/invoices.py`); `InMemoryInvoiceStore`
(`adapters/memory_invoices.py`) holds them in this process. One suite
(tests/contracts/test_invoice_store.py) checks both.

Invoice documents have the shape `records.build_invoice` gives them (`_id` = the deterministic
invoice id per tenant and period, `invoice_number` `INV-YYYY-NNNN`, `status`, `history`,
`period_start`/`period_end`/`overdue_at` as UTC instants, amounts in minor units).

`session` is the MongoDB session of the caller's transaction (ignored in memory). Not behind
this protocol yet: the payment and refund handlers and the configuration handler run their
reads, guarded updates, tracking record and outbox entry in one MongoDB transaction of their
own (`InvoicerStore.transaction`), and the issuing `read` (`cycle.read_and_price`) reads billed
records and coupon counts inside the issuing transaction; both stay typed against
`InvoicerStore`, and so do their callers (`cycle.issue_invoice`, `cycle.issue_isolated`,
`schedule.run_cycle`, `issue.issue_for_period_end`). `InvoicerPorts` is the invoices and
the tenants' ledger in one object, for the use cases that need both (the schedule).
"""

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from pymongo.asynchronous.client_session import AsyncClientSession

from contracts import BillingConfigSubmitted
from contracts.invoices import InvoiceStatus
from services.invoicer.adapters.tenant_ledger import TenantLedger
from services.invoicer.domain import PaymentOutcome
from services.invoicer.periods import Period
from services.invoicer.records import IssueDraft
from services.invoicer.versions import ConfigVersion, chain_start

Doc = dict[str, Any]
#: What an issue attempt reads and prices, given the transaction's session (None in memory);
#: None: nothing to issue.
Read = Callable[[Any], Awaitable[IssueDraft | None]]


class InvoiceStore(Protocol):
    """Invoices, their numbers, the overdue move and the billing errors."""

    async def issue(self, inv_id: str, tenant_id: str, year: int, read: Read) -> str | None:
        """Issue invoice `inv_id` of `tenant_id` numbered in `year` from what `read` prices.

        Atomic: the invoice (`records.build_invoice`), its number (the year's next, gapless:
        an aborted attempt consumes none), the billed records (`records.billed_records`) and
        the superseded ones, the coupon's redemption count, the tenant's ledger, the
        `InvoiceIssued` outbox entry and the resolution of the period's billing error commit
        together or not at all. Each write is guarded by what `read` read; when the ledger or
        billed records moved meanwhile the attempt is priced again (`ISSUE_ATTEMPTS`).

        Idempotent per (tenant, period): returns the new number, or None when `inv_id` exists
        (issued by this or another process) or `read` returned None. Raises what `read` raises
        (nothing written), `LookupError` for a tenant without configuration,
        `IssueContention` when the ledger kept moving.
        """
        ...

    async def invoice(self, inv_id: str, session: AsyncClientSession | None = None) -> Doc | None:
        """The invoice `inv_id`, or None."""
        ...

    async def invoice_by_number(self, number: str) -> Doc | None:
        """The invoice with `number` (`INV-YYYY-NNNN`) or id `number`, or None."""
        ...

    async def find_invoices(
        self, tenant_id: str | None = None, statuses: Sequence[str] | None = None
    ) -> list[Doc]:
        """Invoices by number, of one tenant when given, with one of `statuses` when given."""
        ...

    async def invoices_of(self, tenant_id: str) -> list[Doc]:
        """Every invoice of `tenant_id` (any order)."""
        ...

    async def last_invoiced_end(
        self, tenant_id: str, session: AsyncClientSession | None = None
    ) -> datetime | None:
        """The end of the tenant's latest invoiced period, or None before its first invoice."""
        ...

    async def invoices_overlapping(
        self, tenant_id: str, start: datetime, end: datetime,
        session: AsyncClientSession | None = None,
    ) -> list[Doc]:
        """The tenant's invoices whose period shares time with [start, end), by start."""
        ...

    async def change_status(
        self, inv_id: str, outcome: PaymentOutcome, at: datetime, cause: str
    ) -> InvoiceStatus | None:
        """Apply a payment `outcome` to the status of `inv_id` (`domain.next_status`: never
        backwards) with a history entry and its `InvoiceStatusChanged` outbox entry, atomically
        and guarded by the status read; returns the new status, or None when it did not
        change. Raises `LookupError` for an unknown invoice."""
        ...

    async def overdue_candidates(self, as_of: datetime) -> list[Doc]:
        """Invoices awaiting payment (pending_payment, failed) whose `overdue_at` is at or
        before `as_of`, by that instant, then tenant."""
        ...

    async def move_to_overdue(self, inv_id: str) -> bool:
        """Move `inv_id` to `overdue` at its `overdue_at` (history cause `clock`) with its
        `InvoiceStatusChanged` outbox entry (deterministic event id), atomically; False when
        it is no longer awaiting payment (never backwards; a repeat is a no-op). MongoDB
        raises `DuplicateKeyError` when another process marks it concurrently."""
        ...

    async def next_overdue_after(self, after: datetime) -> datetime | None:
        """The earliest `overdue_at` > `after` of an invoice awaiting payment, or None."""
        ...

    async def record_billing_error(
        self, tenant_id: str, period: Period, exc: BaseException, later_periods_waiting: int
    ) -> str:
        """Record (or update: `attempts` + 1) the open billing error of the tenant's period,
        count it in the metric, and return its reason code
        (`billing_errors.billing_error_reason`). Resolved by the issue of that period."""
        ...

    async def open_billing_errors(self) -> list[Doc]:
        """Open billing errors (schema in `adapters/billing_errors.py`), by period start then
        tenant."""
        ...

    async def count_open_billing_errors(self) -> int:
        """How many billing errors are open."""
        ...


class InvoicerPorts(InvoiceStore, TenantLedger, Protocol):
    """Invoices and the tenants' configurations and ledgers in one object (`InvoicerStore`
    on MongoDB, `InMemoryInvoiceStore` in memory)."""


async def schedule_of(store: InvoicerPorts, tenant: Doc) -> tuple[list[ConfigVersion], datetime]:
    """A tenant's configuration versions and where its next uninvoiced period starts: the
    end of the last invoiced period, or the chain's start before the first invoice
    (docs/billing-periods.md, "The period chain"), or where billing resumed (`resumed`)."""
    versions = await store.config_versions(tenant["_id"])
    return schedule_from(tenant, versions, await store.last_invoiced_end(tenant["_id"]))


def schedule_from(
    tenant: Doc, versions: list[ConfigVersion], last_end: datetime | None
) -> tuple[list[ConfigVersion], datetime]:
    """`schedule_of` from what was read: the tenant's recorded `versions` (by number) and the
    end of its last invoiced period (None before the first invoice)."""
    if not versions:  # a tenant document without recorded versions: its current one
        current = BillingConfigSubmitted.model_validate(tenant["config"])
        versions = [ConfigVersion(int(tenant.get("version", 1)), current)]
    return versions, resumed(tenant, last_end if last_end is not None else chain_start(versions))


def _gap(tenant: Doc) -> tuple[datetime | None, datetime | None]:
    """(end of the tenant's last ended subscription, where billing resumed after it)."""
    ends, resumes = tenant.get("billing_ends_at"), tenant.get("billing_resumes_at")
    ends = ends if isinstance(ends, datetime) else None
    resumes = resumes if isinstance(resumes, datetime) and ends and resumes >= ends else None
    return ends, resumes


def ended_gap(tenant: Doc) -> bool:
    """Whether the tenant's billing stopped at the end of a cancelled subscription
    (`billing_ends_at`) and has not resumed since (no `billing_resumes_at` at or after it)."""
    ends, resumes = _gap(tenant)
    return ends is not None and resumes is None


def resumed(tenant: Doc, start: datetime) -> datetime:
    """`start`, or, when the chain is invoiced up to the end of a subscription that ended
    (`billing_ends_at`) and a new one started later, where billing resumes
    (`billing_resumes_at`; docs/plans.md, "Subscriptions")."""
    ends, resumes = _gap(tenant)
    if ends is not None and resumes is not None and ends <= start < resumes:
        return resumes
    return start


def billable(tenant: Doc, start: datetime, period_start: datetime) -> bool:
    """Whether the period starting at `period_start` of the chain from `start` is billed: not
    when it starts at or after the end of the tenant's cancelled subscription, unless the chain
    already resumed with a new subscription."""
    ends, resumes = _gap(tenant)
    if ends is None:
        return True
    if start < ends:
        return period_start < ends
    return resumes is not None and start >= resumes
