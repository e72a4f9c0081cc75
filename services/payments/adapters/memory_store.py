"""`InMemoryPaymentsStore`: the `PaymentsStore` in dictionaries, for tests and tools that need
no database. It keeps the same promises as the MongoDB store (one test suite checks both):
`commit` checks everything first and then writes all or nothing; the methods are not meant to
be called from several threads."""

from dataclasses import replace
from datetime import datetime
from typing import Any

from contracts.base import Event, utc_now
from contracts.invoices import InvoiceStatus
from services.payments.adapters.store import (
    AuditEntry,
    Customer,
    CustomerChange,
    Expect,
    Outgoing,
    ParkedEvent,
    SubscriptionCheckout,
)
from services.payments.domain import InvoiceRecord


class InMemoryPaymentsStore:
    """`PaymentsStore` held in this process (see the module docstring)."""

    def __init__(self) -> None:
        self.customers: dict[str, Customer] = {}
        self.invoices: dict[str, InvoiceRecord] = {}
        self.tracking: set[tuple[str, str]] = set()
        self.outbox: list[tuple[Event, str, str]] = []
        self.parked_events: dict[str, ParkedEvent] = {}
        self.audits: list[AuditEntry] = []
        self.checkouts: dict[str, SubscriptionCheckout] = {}

    async def ensure_indexes(self) -> None:
        """Nothing to prepare."""

    async def customer(self, tenant_id: str) -> Customer | None:
        """A copy of the tenant's customer record, if any."""
        found = self.customers.get(tenant_id)
        return dict(found) if found is not None else None

    async def save_customer(self, tenant_id: str, customer_id: str,
                            payment_method_id: str | None, payment_method: str | None) -> None:
        """Record the tenant's Stripe customer and default payment method."""
        self.customers[tenant_id] = {
            **self.customers.get(tenant_id, {}),
            "_id": tenant_id, "customer_id": customer_id, "payment_method_id": payment_method_id,
            "payment_method": payment_method, "updated_at": utc_now()}

    async def save_billing(self, tenant_id: str, customer_id: str,
                           billing: dict[str, Any]) -> None:
        """Record the tenant's customer and billing details, keeping its card."""
        self.customers[tenant_id] = {
            **self.customers.get(tenant_id, {}), "_id": tenant_id,
            "customer_id": customer_id, "billing": dict(billing), "updated_at": utc_now()}

    async def add_subscription_checkout(self, checkout: SubscriptionCheckout) -> None:
        """Record a subscription checkout just opened."""
        self.checkouts[checkout.session_id] = checkout

    async def subscription_checkout(self, session_id: str) -> SubscriptionCheckout | None:
        """The subscription checkout of `session_id`, if any."""
        return self.checkouts.get(session_id)

    async def open_subscription_checkout(self, tenant_id: str,
                                         at: datetime) -> SubscriptionCheckout | None:
        """The tenant's newest open, unexpired subscription checkout."""
        found = [c for c in self.checkouts.values() if c.tenant_id == tenant_id
                 and c.status == "open" and c.expires_at > at]
        return max(found, key=lambda c: c.opened_at, default=None)

    async def invoice(self, invoice_id: str) -> InvoiceRecord | None:
        """The record of invoice `invoice_id`, if any."""
        return self.invoices.get(invoice_id)

    async def invoice_by_number(self, number: str) -> InvoiceRecord | None:
        """The record of invoice number `number`, if any."""
        return next((r for r in self.invoices.values() if r.invoice_number == number), None)

    async def invoice_by_intent(self, intent_id: str) -> InvoiceRecord | None:
        """The invoice paid by PaymentIntent `intent_id`, or that it paid a second time."""
        return next((r for r in self.invoices.values() if r.payment_reference == intent_id
                     or intent_id in r.duplicate_intents), None)

    async def set_payment_method(self, invoice_id: str, description: str) -> None:
        """Store a better description of how the invoice was paid."""
        if invoice_id in self.invoices:
            self.invoices[invoice_id] = replace(self.invoices[invoice_id],
                                                payment_method=description)

    async def parked(self, invoice_id: str) -> list[ParkedEvent]:
        """Stripe events kept for `invoice_id`, oldest first."""
        kept = [p for p in self.parked_events.values() if p.invoice_id == invoice_id]
        return sorted(kept, key=lambda p: p.parked_at)

    async def drop_parked(self, event_ids: list[str]) -> None:
        """Forget parked events."""
        for event_id in event_ids:
            self.parked_events.pop(event_id, None)

    async def audit_entries(self, invoice_id: str) -> list[AuditEntry]:
        """The Stripe events not applied to `invoice_id`, in the order they were recorded."""
        return [a for a in self.audits if a.invoice_id == invoice_id]

    async def outbox_events(self) -> list[Event]:
        """Every event added to the outbox, in write order."""
        return [event for event, _, _ in self.outbox]

    def _failed_with_retry(self) -> list[InvoiceRecord]:
        return sorted((r for r in self.invoices.values() if r.status == InvoiceStatus.failed
                       and r.next_attempt_at is not None),
                      key=lambda r: r.next_attempt_at or r.issued_at)

    async def due_retries(self, as_of: datetime, limit: int = 500) -> list[InvoiceRecord]:
        """Failed invoices whose next attempt is at or before `as_of`, earliest first."""
        return [r for r in self._failed_with_retry()
                if r.next_attempt_at is not None and r.next_attempt_at <= as_of][:limit]

    async def next_retry_after(self, after: datetime) -> datetime | None:
        """The earliest scheduled retry strictly later than `after`."""
        later = [r.next_attempt_at for r in self._failed_with_retry()
                 if r.next_attempt_at is not None and r.next_attempt_at > after]
        return later[0] if later else None

    async def mark_attempt(self, invoice_id: str, attempts: int, at: datetime,
                           lease_until: datetime | None = None,
                           status: InvoiceStatus = InvoiceStatus.failed) -> bool:
        """Take the charge lease of attempt `attempts + 1` (see `PaymentsStore`)."""
        current = self.invoices.get(invoice_id)
        if not Expect(status=status, attempts=attempts,
                      idle_at=utc_now()).met_by(current):
            return False
        assert current is not None
        self.invoices[invoice_id] = replace(current, last_attempt_at=at, charging=attempts + 1,
                                            charging_until=lease_until)
        return True

    async def release_attempt(self, invoice_id: str, attempt: int) -> None:
        """Give the lease of `attempt` back."""
        current = self.invoices.get(invoice_id)
        if current is not None and current.charging == attempt:
            self.invoices[invoice_id] = replace(current, charging=None, charging_until=None)

    async def processed(self, consumer: str, event_id: str) -> bool:
        """True when `consumer` already committed event `event_id`."""
        return (consumer, event_id) in self.tracking

    async def commit(
        self,
        *,
        consumer: str | None = None,
        event_id: str | None = None,
        record: InvoiceRecord | None = None,
        outgoing: Outgoing | None = None,
        expect: Expect | None = None,
        park: ParkedEvent | None = None,
        audit: AuditEntry | None = None,
        customer: CustomerChange | None = None,
        checkout_status: tuple[str, str] | None = None,
    ) -> bool:
        """All or nothing; see `PaymentsStore.commit`."""
        tracked = (consumer, event_id) if consumer and event_id else None
        entries = list(outgoing or [])
        ids = [event.event_id for event, _, _ in entries]
        refused: list[bool] = [
            tracked is not None and tracked in self.tracking,
            record is not None and expect is not None
            and not expect.met_by(self.invoices.get(record.invoice_id)),
            len(set(ids)) != len(ids) or bool(set(ids) & {e.event_id for e, _, _ in self.outbox}),
            park is not None and park.event_id in self.parked_events,
        ]
        if any(refused):
            return False
        if tracked is not None:
            self.tracking.add(tracked)
        if record is not None:
            self.invoices[record.invoice_id] = record
        self.outbox.extend(entries)
        if park is not None:
            self.parked_events[park.event_id] = park
        if audit is not None:
            self.audits.append(audit)
        if customer is not None:
            self.customers[customer.tenant_id] = {
                **self.customers.get(customer.tenant_id, {"_id": customer.tenant_id}),
                **customer.fields, "updated_at": utc_now()}
        if checkout_status is not None and checkout_status[0] in self.checkouts:
            self.checkouts[checkout_status[0]] = replace(self.checkouts[checkout_status[0]],
                                                         status=checkout_status[1])
        return True
