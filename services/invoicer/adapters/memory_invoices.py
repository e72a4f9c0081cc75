"""`InMemoryInvoiceStore`: the `InvoiceStore` (adapters/invoice_store.py) in dictionaries, for
tests and wiring without MongoDB. Same shapes as MongoDB (`records.build_invoice`,
`records.billed_records`, `adapters/billing_errors.py`); the tenants' ledgers live in an
`InMemoryTenantLedger`, the outbox entries in `outbox` as (event, topic, key).

Atomicity: one `asyncio.Lock` serialises every write; an issue checks all its guards (ledger
revision, billed records' `rev`, the coupon's redemption count) before it changes anything,
so a refused attempt writes nothing and consumes no number (numbers stay gapless).
"""

import asyncio
import copy
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from contracts import TOPIC_INVOICE, BillingConfigSubmitted
from contracts.base import Event, utc_now
from contracts.invoices import InvoiceStatus
from services.invoicer.adapters.billing_errors import (
    BILLING_ERRORS_TOTAL,
    IssueContention,
    billing_error_reason,
    error_detail,
)
from services.invoicer.adapters.invoice_store import InvoicerPorts, Read
from services.invoicer.adapters.issuing import ISSUE_ATTEMPTS
from services.invoicer.adapters.tenant_ledger import InMemoryTenantLedger
from services.invoicer.domain import (
    AWAITING_PAYMENT,
    PaymentOutcome,
    invoice_id,
    invoice_number,
    next_status,
)
from services.invoicer.late_usage import BilledMoved
from services.invoicer.ledger import LedgerMoved
from services.invoicer.periods import Period
from services.invoicer.records import IssueDraft, billed_records, build_invoice, issued_event
from services.invoicer.records import status_event as status_changed
from services.invoicer.versions import ConfigVersion

Doc = dict[str, Any]


class InMemoryInvoiceStore:
    """`InvoiceStore` in this process (see the module docstring); `tenants` holds the
    configurations and ledgers the issue reads and moves (a new empty one by default), and is
    this store's `TenantLedger` too (`InvoicerPorts`)."""

    def __init__(self, tenants: InMemoryTenantLedger | None = None) -> None:
        self.tenants = tenants if tenants is not None else InMemoryTenantLedger()
        self.invoices: dict[str, Doc] = {}
        self.billed: dict[str, Doc] = {}
        self.counters: dict[int, int] = {}
        self.coupon_redemptions: dict[str, int] = {}
        self.billing_errors: dict[str, Doc] = {}
        self.outbox: list[tuple[Event, str, str]] = []
        self._lock = asyncio.Lock()

    async def issue(self, inv_id: str, tenant_id: str, year: int, read: Read) -> str | None:
        """See `InvoiceStore.issue`; `read` gets None as its session."""
        for _ in range(ISSUE_ATTEMPTS):
            if tenant_id not in self.tenants.tenants:
                raise LookupError(f"tenant {tenant_id!r} has no billing configuration")
            async with self._lock:
                if inv_id in self.invoices:
                    return None
                draft = await read(None)
                if draft is None:
                    return None
                try:
                    self._check(draft)
                except (LedgerMoved, BilledMoved):
                    continue
                return self._write(draft, year)
        raise IssueContention(f"could not issue {inv_id}: the tenant ledger kept changing")

    def _check(self, issue: IssueDraft) -> None:
        """Every guard of the writes, before any of them."""
        if self.tenants.tenants[issue.tenant_id].get("ledger_rev", 0) != issue.ledger.rev:
            raise LedgerMoved(issue.tenant_id)
        for s in issue.superseded:
            current = self.billed.get(s.doc["_id"])
            if current is None or current.get("rev") != s.doc.get("rev"):
                raise BilledMoved(f"billed usage {s.doc['_id']} changed meanwhile")
        coupon = issue.config.coupon
        if (issue.draft.coupon_applied and coupon is not None and issue.coupon_uses == 0
                and self.coupon_redemptions.get(coupon.code, 0) != issue.code_redemptions):
            raise LedgerMoved(f"coupon {coupon.code!r} was redeemed meanwhile")

    def _write(self, issue: IssueDraft, year: int) -> str:
        """The writes of one checked issue; returns its number."""
        self.counters[year] = self.counters.get(year, 0) + 1
        number = invoice_number(year, self.counters[year])
        doc = build_invoice(issue, number)
        self.invoices[issue.invoice_id] = doc
        for record in billed_records(issue):
            self.billed[record["_id"]] = record
        for s in issue.superseded:
            record = self.billed[s.doc["_id"]]
            record.update(quantity=s.quantity, amount=s.amount, priced_at=issue.priced_at,
                          usage_marker=issue.marker, rev=(s.doc.get("rev") or 0) + 1)
            if s.adjusted:
                record.setdefault("adjusted_by", []).append(issue.invoice_id)
        coupon, draft, ledger = issue.config.coupon, issue.draft, issue.ledger
        if draft.coupon_applied and coupon is not None and issue.coupon_uses == 0:
            self.coupon_redemptions[coupon.code] = issue.code_redemptions + 1
        tenant = self.tenants.tenants[issue.tenant_id]
        tenant.update(ledger.after(draft, coupon, issue.invoice_id, number, issue.period.end,
                                   issue.config.settings.currency),
                      last_period_end=issue.period.end)
        tenant["ledger_rev"] = tenant.get("ledger_rev", 0) + 1
        tenant["invoices"] = tenant.get("invoices", 0) + 1
        self.outbox.append((issued_event(doc), TOPIC_INVOICE, issue.tenant_id))
        error = self.billing_errors.get(issue.invoice_id)
        if error is not None and error["status"] == "open":
            error.update(status="resolved", resolved_at=utc_now(), resolved_by=number)
        return number

    async def invoice(self, inv_id: str, session: object = None) -> Doc | None:
        """See `InvoiceStore.invoice`."""
        return copy.deepcopy(self.invoices.get(inv_id))

    async def invoice_by_number(self, number: str) -> Doc | None:
        """See `InvoiceStore.invoice_by_number`."""
        found = [d for d in self.invoices.values()
                 if d["invoice_number"] == number or d["_id"] == number]
        return copy.deepcopy(found[0]) if found else None

    async def find_invoices(
        self, tenant_id: str | None = None, statuses: Sequence[str] | None = None
    ) -> list[Doc]:
        """See `InvoiceStore.find_invoices`."""
        found = [d for d in self.invoices.values()
                 if (not tenant_id or d["tenant_id"] == tenant_id)
                 and (statuses is None or d["status"] in statuses)]
        return copy.deepcopy(sorted(found, key=lambda d: str(d["invoice_number"])))

    async def invoices_of(self, tenant_id: str) -> list[Doc]:
        """See `InvoiceStore.invoices_of`."""
        return await self.find_invoices(tenant_id)

    async def last_invoiced_end(self, tenant_id: str, session: object = None) -> datetime | None:
        """See `InvoiceStore.last_invoiced_end`."""
        mine = [d for d in self.invoices.values() if d["tenant_id"] == tenant_id]
        if not mine:
            return None
        end: datetime = max(mine, key=lambda d: d["period_start"])["period_end"]
        return end

    async def invoices_overlapping(
        self, tenant_id: str, start: datetime, end: datetime, session: object = None
    ) -> list[Doc]:
        """See `InvoiceStore.invoices_overlapping`."""
        found = [d for d in self.invoices.values() if d["tenant_id"] == tenant_id
                 and d["period_start"] < end and d["period_end"] > start]
        return copy.deepcopy(sorted(found, key=lambda d: d["period_start"]))

    async def change_status(
        self, inv_id: str, outcome: PaymentOutcome, at: datetime, cause: str
    ) -> InvoiceStatus | None:
        """See `InvoiceStore.change_status`."""
        async with self._lock:
            doc = self.invoices.get(inv_id)
            if doc is None:
                raise LookupError(f"no invoice {inv_id!r}")
            previous = InvoiceStatus(doc["status"])
            status = next_status(previous, outcome)
            if status == previous:
                return None
            self._set_status(doc, previous, status, at, cause)
            return status

    def _set_status(self, doc: Doc, previous: InvoiceStatus, status: InvoiceStatus,
                    at: datetime, cause: str, reason: str | None = None) -> None:
        doc["status"] = status
        doc["history"].append({"status": status, "at": at, "cause": cause})
        event = status_changed(doc, previous, status, cause, at, reason=reason)
        self.outbox.append((event, TOPIC_INVOICE, doc["tenant_id"]))

    async def overdue_candidates(self, as_of: datetime) -> list[Doc]:
        """See `InvoiceStore.overdue_candidates`."""
        found = [d for d in self.invoices.values()
                 if d["status"] in AWAITING_PAYMENT and d["overdue_at"] <= as_of]
        return copy.deepcopy(sorted(found, key=lambda d: (d["overdue_at"], d["tenant_id"])))

    async def move_to_overdue(self, inv_id: str) -> bool:
        """See `InvoiceStore.move_to_overdue`."""
        async with self._lock:
            doc = self.invoices.get(inv_id)
            if doc is None or doc["status"] not in AWAITING_PAYMENT:
                return False
            self._set_status(doc, InvoiceStatus(doc["status"]), InvoiceStatus.overdue,
                             doc["overdue_at"], "clock", reason="due date passed without payment")
            return True

    async def next_overdue_after(self, after: datetime) -> datetime | None:
        """See `InvoiceStore.next_overdue_after`."""
        return min((d["overdue_at"] for d in self.invoices.values()
                    if d["status"] in AWAITING_PAYMENT and d["overdue_at"] > after),
                   default=None)

    async def record_billing_error(
        self, tenant_id: str, period: Period, exc: BaseException, later_periods_waiting: int
    ) -> str:
        """See `InvoiceStore.record_billing_error`."""
        reason, now = billing_error_reason(exc), utc_now()
        async with self._lock:
            doc = self.billing_errors.setdefault(
                invoice_id(tenant_id, period.start_date),
                {"_id": invoice_id(tenant_id, period.start_date), "first_failed_at": now,
                 "attempts": 0})
            doc.pop("resolved_at", None)
            doc.pop("resolved_by", None)
            doc.update(tenant_id=tenant_id, period_start=period.start, period_end=period.end,
                       reason=reason, detail=error_detail(exc), last_failed_at=now,
                       later_periods_waiting=later_periods_waiting, status="open",
                       attempts=doc["attempts"] + 1)
        BILLING_ERRORS_TOTAL.labels(reason=reason).inc()
        return reason

    async def open_billing_errors(self) -> list[Doc]:
        """See `InvoiceStore.open_billing_errors`."""
        found = [d for d in self.billing_errors.values() if d["status"] == "open"]
        return copy.deepcopy(sorted(found, key=lambda d: (d["period_start"], d["tenant_id"])))

    async def count_open_billing_errors(self) -> int:
        """See `InvoiceStore.count_open_billing_errors`."""
        return len(await self.open_billing_errors())

    # TenantLedger, delegated to `tenants`

    async def tenant(self, tenant_id: str, session: object = None) -> Doc | None:
        """See `TenantLedger.tenant`."""
        return await self.tenants.tenant(tenant_id)

    async def all_tenants(self) -> list[Doc]:
        """See `TenantLedger.all_tenants`."""
        return await self.tenants.all_tenants()

    async def config_versions(self, tenant_id: str, session: object = None) -> list[ConfigVersion]:
        """See `TenantLedger.config_versions`."""
        return await self.tenants.config_versions(tenant_id)

    async def config_in_force(
        self, tenant_id: str, at: datetime, session: object = None
    ) -> ConfigVersion | None:
        """See `TenantLedger.config_in_force`."""
        return await self.tenants.config_in_force(tenant_id, at)

    async def add_config_version(
        self, command: BillingConfigSubmitted, version: int, now: datetime,
        session: object = None,
    ) -> None:
        """See `TenantLedger.add_config_version`."""
        await self.tenants.add_config_version(command, version, now)


if TYPE_CHECKING:  # mypy checks that it implements both ports
    _PORTS: InvoicerPorts = InMemoryInvoiceStore()
