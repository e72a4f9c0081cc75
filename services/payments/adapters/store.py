"""`PaymentsStore`: the state the payments handlers keep, as an interface.

Two implementations pass the same test suite (`tests/contracts/test_payments_store.py`):
`MongoPaymentsStore` (`adapters/mongo_store.py`, the worker's) and `InMemoryPaymentsStore`
(`adapters/memory_store.py`). Handlers talk only to this protocol.

What is kept: the tenants' Stripe customers, billing details and default payment methods,
the subscription checkouts opened for them (docs/plans.md, "Billing customer and checkout"),
one `InvoiceRecord` per issued invoice, the ids of processed events per consumer (tracking),
the outbox, Stripe events kept until their invoice is known (parked) and webhooks that were
not applied (audit). `commit` is the one atomic write: tracking + invoice record (under an
`Expect` condition) + outbox entries + a parked event or an audit entry + a customer's fields
+ a subscription checkout's status, all or nothing (docs/payments.md).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from contracts.base import Event
from contracts.invoices import InvoiceStatus
from services.payments.domain import InvoiceRecord

#: (event, contract topic, message key) entries for the outbox.
Outgoing = list[tuple[Event, str, str]]
#: A tenant's Stripe customer: `customer_id`, `payment_method_id`, `payment_method` (`card visa
#: 4242`); a plain mapping, absent keys read as None.
Customer = dict[str, Any]
#: One recorded refund of an invoice: (refund id, amount in minor units, PaymentIntent).
RecordedRefund = tuple[str, int, str]


@dataclass(frozen=True)
class Expect:
    """Conditions the stored invoice record must meet for `commit` to replace it; every field
    left None is not checked. A record that does not exist never meets a condition.

    - `status`, `attempts`: equal to these;
    - `charging`: the charge lease is held by this attempt (docs/payments.md "Charge lease");
    - `idle_at`: no live lease at this instant (none taken, or run out by then);
    - `without_duplicate`: this PaymentIntent is not among the duplicate payments yet;
    - `refunds`: the recorded refunds are still exactly these, in this order.
    """

    status: InvoiceStatus | None = None
    attempts: int | None = None
    charging: int | None = None
    idle_at: datetime | None = None
    without_duplicate: str | None = None
    refunds: tuple[RecordedRefund, ...] | None = None

    def met_by(self, record: InvoiceRecord | None) -> bool:
        """True when `record` (the stored one, None if absent) meets every condition."""
        if record is None:
            return False
        checks = [
            self.status is None or record.status == self.status,
            self.attempts is None or record.attempts == self.attempts,
            self.charging is None or record.charging == self.charging,
            self.idle_at is None or not record.leased(self.idle_at),
            self.without_duplicate is None
            or self.without_duplicate not in record.duplicate_intents,
            self.refunds is None or record.refunds == self.refunds,
        ]
        return all(checks)


@dataclass(frozen=True)
class SubscriptionCheckout:
    """A setup-mode Checkout Session opened for a subscription: its id, the tenant, the plan
    (code, version or None for the current one), when it was opened and when Stripe expires
    it, and `status` (`open`, `complete`, `expired`)."""

    session_id: str
    tenant_id: str
    plan_code: str
    plan_version: int | None
    opened_at: datetime
    expires_at: datetime
    status: str = "open"


@dataclass(frozen=True)
class CustomerChange:
    """Fields of a tenant's customer record to set in a `commit` (e.g. the default card)."""

    tenant_id: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class ParkedEvent:
    """A Stripe event kept until its invoice is known: the Stripe event id (`evt_...`), the
    invoice its PaymentIntent names, that intent, and when it was kept."""

    event_id: str
    invoice_id: str
    intent_id: str
    parked_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    """A Stripe event that was not applied: the re-read intent does not match the invoice
    (`reason` `invoice`, `amount` or `currency`; docs/payments.md "Webhooks")."""

    stripe_event_id: str
    intent_id: str
    invoice_id: str
    reason: str
    at: datetime
    detail: str


class PaymentsStore(Protocol):
    """The payments service's durable state (see the module docstring)."""

    async def ensure_indexes(self) -> None:
        """Prepare the storage (indexes); idempotent."""
        ...

    async def customer(self, tenant_id: str) -> Customer | None:
        """The tenant's Stripe customer and default payment method, None if never set up."""
        ...

    async def save_customer(self, tenant_id: str, customer_id: str,
                            payment_method_id: str | None, payment_method: str | None) -> None:
        """Record (or replace) the tenant's Stripe customer and default payment method."""
        ...

    async def save_billing(self, tenant_id: str, customer_id: str,
                           billing: dict[str, Any]) -> None:
        """Record the tenant's Stripe customer and billing details (`BillingCustomerDetails`
        as a mapping), keeping its default payment method."""
        ...

    async def add_subscription_checkout(self, checkout: SubscriptionCheckout) -> None:
        """Record a subscription checkout just opened (replacing one of the same id)."""
        ...

    async def subscription_checkout(self, session_id: str) -> SubscriptionCheckout | None:
        """The subscription checkout of Checkout Session `session_id`, if one was opened."""
        ...

    async def open_subscription_checkout(self, tenant_id: str,
                                         at: datetime) -> SubscriptionCheckout | None:
        """The tenant's newest subscription checkout still `open` and not expired at `at`."""
        ...

    async def invoice(self, invoice_id: str) -> InvoiceRecord | None:
        """The record of invoice `invoice_id`, None if it was never issued here."""
        ...

    async def invoice_by_number(self, number: str) -> InvoiceRecord | None:
        """The record of invoice number `number` (`INV-YYYY-NNNN`), if any."""
        ...

    async def invoice_by_intent(self, intent_id: str) -> InvoiceRecord | None:
        """The invoice paid by PaymentIntent `intent_id`, or that it paid a second time."""
        ...

    async def set_payment_method(self, invoice_id: str, description: str) -> None:
        """Store a better description (`card visa 4242`) of how the invoice was paid."""
        ...

    async def parked(self, invoice_id: str) -> list[ParkedEvent]:
        """Stripe events kept for `invoice_id` (arrived before the invoice), oldest first."""
        ...

    async def drop_parked(self, event_ids: list[str]) -> None:
        """Forget parked events (by Stripe event id) once their invoice reconciled them."""
        ...

    async def audit_entries(self, invoice_id: str) -> list[AuditEntry]:
        """The Stripe events not applied to `invoice_id`, in the order they were recorded."""
        ...

    async def outbox_events(self) -> list[Event]:
        """Every event added to the outbox, published or not, in write order."""
        ...

    async def due_retries(self, as_of: datetime, limit: int = 500) -> list[InvoiceRecord]:
        """Failed invoices whose next attempt is at or before `as_of`, earliest first."""
        ...

    async def next_retry_after(self, after: datetime) -> datetime | None:
        """The earliest scheduled retry of a failed invoice strictly later than `after`."""
        ...

    async def mark_attempt(self, invoice_id: str, attempts: int, at: datetime,
                           lease_until: datetime | None = None,
                           status: InvoiceStatus = InvoiceStatus.failed) -> bool:
        """Take the invoice's charge lease for attempt `attempts + 1` of an invoice in `status`
        (failed: a dunning retry; pending_payment too for the portal's Pay now) with
        `attempts` attempts, starting at `at` (so a webhook that beats the retry's own commit
        dates it right), held until `lease_until` (wall clock; None: until the commit).
        False, writing nothing, when the invoice changed or another lease still holds
        (docs/payments.md "Charge lease"). Atomic."""
        ...

    async def release_attempt(self, invoice_id: str, attempt: int) -> None:
        """Give the lease of `attempt` back (its Stripe call failed without an outcome)."""
        ...

    async def processed(self, consumer: str, event_id: str) -> bool:
        """True when `consumer` already committed event `event_id`."""
        ...

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
        """Atomically: mark `event_id` processed by `consumer`, write `record` (created or
        replaced; with `expect`, only replacing a stored record that meets it), add
        `outgoing` to the outbox, keep `park`, record `audit`, set `customer`'s fields and
        give the subscription checkout (session id, status) its status. Returns False, writing
        nothing, when the event was already processed, the stored record does not meet
        `expect`, an outgoing event id is already in the outbox or `park` is already kept."""
        ...
