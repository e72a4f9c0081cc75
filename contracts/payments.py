"""Payment outcomes on `billing.payment.v1` and verified Stripe events on
`billing.stripe-events.v1` (the Stripe facts they rest on: docs/design.md#stripe)."""

from typing import Any

from pydantic import AwareDatetime, Field

from contracts.base import Event
from contracts.money import CurrencyCode, MinorUnits


class PaymentSucceeded(Event):
    """An invoice was paid: by Stripe (`payment_reference` = PaymentIntent id, `payment_method`
    like `card visa 4242`) or recorded manually by an operator (`ach`, `bank_transfer`)."""

    invoice_id: str = Field(min_length=1)
    invoice_number: str = Field(min_length=1)
    tenant_id: str = Field(min_length=1)
    amount: MinorUnits
    currency: CurrencyCode
    payment_reference: str = Field(min_length=1)
    payment_method: str = Field(min_length=1)
    paid_at: AwareDatetime
    attempt: int = Field(default=1, ge=0)


class PaymentFailed(Event):
    """A payment attempt failed; `decline_code` and `failure_message` are Stripe's."""

    invoice_id: str = Field(min_length=1)
    invoice_number: str = Field(min_length=1)
    tenant_id: str = Field(min_length=1)
    amount: MinorUnits
    currency: CurrencyCode
    payment_reference: str | None = None
    failure_code: str | None = None
    decline_code: str | None = None
    failure_message: str
    attempt: int = Field(ge=1)
    next_attempt_at: AwareDatetime | None = None


class StripeEventReceived(Event):
    """A Stripe webhook event whose signature was verified (HMAC-SHA256, 300 s tolerance).

    `event_id` is Stripe's event id (`evt_...`), so redeliveries share it; `payload` is the
    event object exactly as Stripe sent it.
    """

    stripe_event_type: str
    payload: dict[str, Any]


class PaymentDuplicated(Event):
    """Stripe took money for an invoice that was already paid (for example by a manual payment
    recorded while a charge was in flight): `payment_reference` is the extra PaymentIntent,
    `settled_by` the reference that paid the invoice. An operator refunds it (see
    docs/payments.md, "Duplicate payments"); the money is recorded, never dropped."""

    invoice_id: str = Field(min_length=1)
    invoice_number: str = Field(min_length=1)
    tenant_id: str = Field(min_length=1)
    amount: MinorUnits
    currency: CurrencyCode
    payment_reference: str = Field(min_length=1)
    settled_by: str | None = None
    received_at: AwareDatetime


class PaymentRefunded(Event):
    """Stripe refunded `amount` of an invoice's payment (one event per Stripe refund id
    `refund_id`); `refunded_total` is everything refunded on the invoice so far. The invoice
    stays `paid` (docs/payments.md, "Refunds")."""

    invoice_id: str = Field(min_length=1)
    invoice_number: str = Field(min_length=1)
    tenant_id: str = Field(min_length=1)
    refund_id: str = Field(min_length=1)
    amount: MinorUnits
    currency: CurrencyCode
    payment_reference: str = Field(min_length=1)
    refunded_total: MinorUnits
    refunded_at: AwareDatetime
    reason: str | None = None
