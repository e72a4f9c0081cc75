"""What the notifier decides, without I/O: which email an invoice event calls for, its ids and
subject, and the retry back-off (statuses: docs/design.md#statuses).

Contact settings are those in force when the email is sent (docs/configuration.md, "Contact
settings in emails"): the notifier projects each tenant's `BillingConfigApplied` events
(`billing.tenant.v1`) and, for each email, uses whichever of that projection and the invoice
event's own `billing_email` / `email_notifications` comes from the newer configuration version
(`contact_in_force`). A tenant who turns notifications off or changes `billing_email` gets
nothing more at the old address, even about invoices issued before the change.

At most one email per (invoice, kind): `notification_id` = `"{invoice_id}:{kind}"` is the key
of the `notifier_sent` record and the seed of the Message-ID, so a redelivered event, a second
event of the same kind (a repeated payment failure) or a restart finds the same record.
"""

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.utils import parseaddr

from contracts import InvoiceIssued, InvoiceStatusChanged
from contracts.notifications import NotificationKind

#: Invoice status reached -> email kind. Other statuses (`pending_payment`) send nothing.
KIND_BY_STATUS: dict[str, NotificationKind] = {
    "failed": "payment_failed",
    "overdue": "overdue",
    "paid": "receipt",
}
SUBJECTS: dict[NotificationKind, str] = {
    "invoice_issued": "Your invoice {number} is ready",
    "payment_failed": "Payment failed for invoice {number}",
    "overdue": "Reminder: invoice {number} is overdue",
    "receipt": "Receipt for invoice {number}: payment received",
}
InvoiceEvent = InvoiceIssued | InvoiceStatusChanged


@dataclass(frozen=True)
class Contact:
    """A tenant's contact settings and the configuration version that set them."""

    version: int
    billing_email: str
    email_notifications: bool


@dataclass(frozen=True)
class NotificationRequest:
    """One email the notifier owes: `kind` about invoice `invoice_id` to `recipient`.

    `amount` is in the currency's minor units; `recipient` and `send` (the tenant's
    `email_notifications`) are the contact settings in force when the email is sent; `issued`
    is the full invoice when the event was `InvoiceIssued` (the PDF is rendered from it).
    """

    kind: NotificationKind
    invoice_id: str
    invoice_number: str
    tenant_id: str
    recipient: str
    send: bool
    amount: int
    currency: str
    issue_date: date
    due_date: date
    period_start: datetime
    period_end: datetime
    source_event_id: str
    occurred_at: datetime
    paid_date: date | None = None
    payment_reference: str | None = None
    payment_method: str | None = None
    reason: str | None = None
    issued: InvoiceIssued | None = None

    @property
    def notification_id(self) -> str:
        """`"{invoice_id}:{kind}"`: the one-email-per-(invoice, kind) key."""
        return notification_id(self.invoice_id, self.kind)

    @property
    def subject(self) -> str:
        """The email subject for this kind and invoice number."""
        return SUBJECTS[self.kind].format(number=self.invoice_number)

    @property
    def period_last_day(self) -> date:
        """The period's last day: `period_end` is exclusive (the next period's first instant)."""
        return (self.period_end - timedelta(microseconds=1)).date()


def notification_id(invoice_id: str, kind: NotificationKind) -> str:
    """The key of the email of `kind` about `invoice_id`."""
    return f"{invoice_id}:{kind}"


def contact_in_force(event: InvoiceEvent, projected: Contact | None) -> Contact:
    """The contact settings to use for `event`: the event's own (`billing_email`,
    `email_notifications`, from configuration `config_version`; an event without a version
    counts as version 0) unless the notifier's `projected` settings come from a newer version.
    """
    own = Contact(event.config_version or 0, str(event.billing_email), event.email_notifications)
    if projected is not None and projected.version > own.version:
        return projected
    return own


def notification_for(
    event: InvoiceEvent, projected: Contact | None = None
) -> NotificationRequest | None:
    """The email `event` calls for, or None when it calls for none.

    `InvoiceIssued` -> `invoice_issued`; `InvoiceStatusChanged` to `failed` -> `payment_failed`,
    to `overdue` -> `overdue`, to `paid` -> `receipt`; any other transition -> None. Recipient
    and whether to send come from `contact_in_force(event, projected)`.
    """
    contact = contact_in_force(event, projected)
    common = dict(
        invoice_id=event.invoice_id, invoice_number=event.invoice_number,
        tenant_id=event.tenant_id, recipient=contact.billing_email,
        send=contact.email_notifications, amount=event.amount, currency=event.currency,
        issue_date=event.issue_date, due_date=event.due_date, period_start=event.period_start,
        period_end=event.period_end, source_event_id=event.event_id,
        occurred_at=event.occurred_at,
    )
    if isinstance(event, InvoiceIssued):
        return NotificationRequest(kind="invoice_issued", issued=event, **common)  # type: ignore[arg-type]
    kind = KIND_BY_STATUS.get(event.status)
    if kind is None:
        return None
    return NotificationRequest(
        kind=kind, paid_date=event.paid_date, payment_reference=event.payment_reference,
        payment_method=event.payment_method, reason=event.reason, **common,  # type: ignore[arg-type]
    )


def message_id(notification: str, sender: str) -> str:
    """A deterministic RFC 5322 Message-ID for `notification` sent from `sender`'s domain, so a
    resend after a crash carries the same id and receiving systems can collapse duplicates."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "billing.invalid"
    digest = hashlib.sha256(notification.encode()).hexdigest()[:32]
    return f"<{digest}.notification@{domain}>"


def backoff_seconds(retry: int, base: float, cap: float) -> float:
    """Delay before retry number `retry` (1, 2, ...): `base * 2**(retry-1)`, at most `cap`."""
    return float(min(cap, base * (2 ** max(0, retry - 1))))
