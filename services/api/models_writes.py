"""Request and response bodies of the API's write endpoints (docs/api-endpoints.md, "Writes").

Amounts are integers in the currency's minor units (ISO 4217: cents for USD, yen for JPY), as
everywhere in the platform's contracts.
"""

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.config import BillingSettings, PricePlan
from contracts.money import CurrencyCode, MinorUnits


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BillingConfigBody(_Body):
    """A tenant's new billing configuration: the eight fields of the product's billing
    configuration (`settings`), the IANA `timezone`, `effective_from` (the first period's
    start, a date in that zone) and the `price_plan`. The current configuration's coupon and
    credits are carried over unchanged; `tenant_name` defaults to the current one."""

    settings: BillingSettings
    timezone: str = Field(min_length=1, max_length=64)
    effective_from: date
    price_plan: PricePlan
    tenant_name: str | None = Field(default=None, max_length=200)


class CreditBody(_Body):
    """A goodwill credit: `amount` minor units of the tenant's currency, and why."""

    amount: MinorUnits = Field(gt=0)
    reason: str = Field(min_length=1, max_length=500)


class CouponBody(_Body):
    """A catalog coupon: `amount_off` minor units of `currency`, for `once`, `repeating`
    (`duration_in_periods` invoices) or `forever`, redeemable by at most `max_redemptions`
    tenants (absent: unlimited). `code` is what customers type: 8 to 64 characters, at least 5
    distinct, from two of lower case, upper case and digits."""

    code: str = Field(min_length=8, max_length=64)
    amount_off: MinorUnits = Field(gt=0)
    currency: CurrencyCode
    duration: Literal["once", "repeating", "forever"]
    duration_in_periods: int | None = Field(default=None, ge=1)
    max_redemptions: int | None = Field(default=None, ge=1)


class RedeemBody(_Body):
    """The catalog coupon code a tenant redeems."""

    code: str = Field(min_length=1, max_length=64)


class PaymentBody(_Body):
    """A payment received outside Stripe: `method`, the bank's `reference`, and `paid_on`, the
    date it arrived in the tenant's time zone (default: now)."""

    method: Literal["ach", "bank_transfer"]
    reference: str = Field(min_length=1, max_length=200)
    paid_on: date | None = None


class Accepted(BaseModel):
    """A command the broker acknowledged; the invoicer applies it shortly after (or refuses
    it: the refusal appears in `GET /v1/audit`). `submission_id` is the command's event id;
    `status_url` where its effect shows."""

    submission_id: str
    status_url: str


class Payment(BaseModel):
    """The invoice once a manual payment is recorded (`status` `paid`)."""

    invoice_number: str
    tenant_id: str
    status: str
    amount: int
    currency: str
    payment_method: str | None
    payment_reference: str | None
