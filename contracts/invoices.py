"""Invoice events on `billing.invoice.v1` (numbers and statuses: docs/design.md#statuses)."""

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, EmailStr, Field

from contracts.base import Contract, Event
from contracts.money import CurrencyCode, MinorUnits, SignedMinorUnits


class InvoiceStatus(StrEnum):
    """Where an invoice stands: issued and not yet paid, paid (final), its last charge failed,
    or past its due date unpaid."""

    pending_payment = "pending_payment"
    paid = "paid"
    failed = "failed"
    overdue = "overdue"


LineItemKind = Literal["flat_fee", "usage", "coupon", "credit", "adjustment", "proration"]
#: `INV-YYYY-NNNN`: year of issue, then a gapless sequence within that year.
INVOICE_NUMBER_PATTERN = r"^INV-\d{4}-\d{4,}$"


class LineItem(Contract):
    """One invoice line. `amount` is in minor units, negative for coupons and credits; `quantity`
    and `unit_price` (major units) are exact decimals; the amount was rounded once, half-up.
    Kind `proration`: a subscription's plan change within the period ("Unused time on ..."
    negative, "Remaining time on ..." positive; docs/plans.md, "Proration")."""

    kind: LineItemKind
    description: str
    meter: str | None = None
    service: str | None = None
    quantity: Decimal = Field(default=Decimal(1), allow_inf_nan=False)
    unit_price: Decimal | None = Field(default=None, allow_inf_nan=False)
    amount: SignedMinorUnits


class InvoiceIssued(Event):
    """An invoice was issued (status `pending_payment`).

    Carries the contact settings in force when it was issued (`billing_email`,
    `email_notifications`, from configuration `config_version`); the notifier uses them unless
    its projection of `BillingConfigApplied` holds a newer version (docs/configuration.md,
    "Contact settings in emails").
    """

    invoice_id: str = Field(min_length=1)
    invoice_number: str = Field(pattern=INVOICE_NUMBER_PATTERN)
    tenant_id: str = Field(min_length=1)
    amount: MinorUnits
    currency: CurrencyCode
    status: InvoiceStatus = InvoiceStatus.pending_payment
    issue_date: date
    due_date: date
    period_start: AwareDatetime
    period_end: AwareDatetime
    line_items: tuple[LineItem, ...]
    billing_email: EmailStr
    email_notifications: bool
    config_version: int = Field(ge=1)
    #: The tenant's IANA time zone: dates it is given (a manual payment's day) are read in it.
    timezone: str = Field(default="UTC", min_length=1)


class InvoiceStatusChanged(Event):
    """An invoice moved to `status` (never backwards: `paid` is final)."""

    invoice_id: str = Field(min_length=1)
    invoice_number: str = Field(pattern=INVOICE_NUMBER_PATTERN)
    tenant_id: str = Field(min_length=1)
    previous_status: InvoiceStatus
    status: InvoiceStatus
    amount: MinorUnits
    currency: CurrencyCode
    issue_date: date
    due_date: date
    period_start: AwareDatetime
    period_end: AwareDatetime
    paid_date: date | None = None
    payment_reference: str | None = None
    payment_method: str | None = None
    reason: str | None = None
    billing_email: EmailStr
    email_notifications: bool
    #: The configuration version `billing_email` and `email_notifications` come from (None in
    #: events from before it was added).
    config_version: int | None = Field(default=None, ge=1)
