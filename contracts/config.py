"""Tenant billing configuration commands on `billing.tenant-config.v1` (the product's fields:
docs/design.md#billing-configuration, docs/configuration.md)."""

from datetime import date
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, EmailStr, Field, model_validator

from contracts.base import Contract, Event
from contracts.money import CurrencyCode, MinorUnits, Quantity, UnitPrice


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_zone)]


class Actor(Contract):
    """Who submits a command. Only role `super` may change billing configuration."""

    user_id: str = Field(min_length=1)
    role: str = Field(min_length=1)


class BillingSettings(Contract):
    """The eight fields of the product's billing configuration
    (docs/design.md#billing-configuration).

    `flat_rate_amount` is in the currency's minor units. `billing_day_of_month` past the month's
    end means the month's last day.
    """

    flat_rate_amount: MinorUnits
    currency: CurrencyCode
    billing_frequency: Literal["monthly", "quarterly", "annually"]
    billing_email: EmailStr
    auto_generate_invoices: bool
    billing_day_of_month: int = Field(ge=1, le=31)
    payment_due_days: int = Field(ge=0, le=365)
    email_notifications: bool


class PriceTier(Contract):
    """One tier: units up to `up_to` (inclusive, cumulative; None = unbounded) at `unit_price`
    (major units per unit), plus an optional `flat_price` (major units) for reaching the tier."""

    up_to: Quantity | None = None
    unit_price: UnitPrice
    flat_price: UnitPrice = UnitPrice(0)


class PriceCharge(Contract):
    """How one meter is priced.

    Models: `per_unit` (quantity x unit_price), `graduated` (each tier prices its own slice),
    `volume` (the tier the whole quantity reaches prices all of it), `package` (price per started
    block of `package_size` units). `included_quantity` is taken off first.
    """

    meter: str = Field(min_length=1)
    model: Literal["per_unit", "graduated", "volume", "package"]
    unit_price: UnitPrice | None = None
    tiers: tuple[PriceTier, ...] = ()
    package_size: Quantity | None = None
    included_quantity: Quantity = Quantity(0)
    description: str | None = None

    @model_validator(mode="after")
    def _model_fields_present(self) -> Self:
        if self.model in ("per_unit", "package") and self.unit_price is None:
            raise ValueError(f"model {self.model} needs unit_price")
        if self.model == "package" and not self.package_size:
            raise ValueError("model package needs a package_size > 0")
        if self.model in ("graduated", "volume"):
            if not self.tiers:
                raise ValueError(f"model {self.model} needs tiers")
            if self.tiers[-1].up_to is not None:
                raise ValueError("the last tier must be unbounded (up_to null)")
            bounds = [t.up_to for t in self.tiers[:-1]]
            if any(b is None for b in bounds) or bounds != sorted(bounds):  # type: ignore[type-var]
                raise ValueError("tier bounds must increase")
        return self


class PricePlan(Contract):
    """Usage charges per meter; a meter without a charge is not billed."""

    charges: tuple[PriceCharge, ...] = ()


def check_coupon_duration(duration: str, duration_in_periods: int | None) -> None:
    """Raise ValueError unless `duration_in_periods` is given exactly when `duration` is
    `repeating` (a coupon's duration, as Stripe's coupons have it)."""
    if (duration == "repeating") != (duration_in_periods is not None):
        raise ValueError("duration_in_periods is required for, and only for, 'repeating'")


class Coupon(Contract):
    """A fixed amount off (minor units) for `once`, `repeating` (`duration_in_periods`) or
    `forever`; `code` is the customer-facing, hard-to-guess code."""

    code: str = Field(min_length=8, max_length=64)
    amount_off: MinorUnits
    duration: Literal["once", "repeating", "forever"]
    duration_in_periods: int | None = Field(default=None, ge=1)
    max_redemptions: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _periods_for_repeating(self) -> Self:
        check_coupon_duration(self.duration, self.duration_in_periods)
        return self


class Credit(Contract):
    """A goodwill credit (minor units) on the tenant's balance, applied to invoices issued at or
    after `granted_at` until used up; who granted it and why are kept."""

    credit_id: str = Field(min_length=1)
    amount: MinorUnits
    granted_at: AwareDatetime
    granted_by: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class BillingConfigSubmitted(Event):
    """An operator's create-or-update of one tenant's billing configuration.

    Accepted only when `signature` is the HMAC-SHA256 of the command's canonical JSON under the
    platform's command signing key (`services/common/signing.py`) and `actor.role == "super"`;
    anything else is refused, audited and dead-lettered with reason `forbidden`. `event_id` is
    unique per submission and `occurred_at` is when it was submitted: every accepted
    submission becomes a new version, in submission order (docs/configuration.md).
    """

    tenant_id: str = Field(min_length=1)
    tenant_name: str | None = None
    actor: Actor
    settings: BillingSettings
    timezone: TimeZoneName = "UTC"
    effective_from: date
    price_plan: PricePlan = PricePlan()
    coupon: Coupon | None = None
    credits: tuple[Credit, ...] = ()
    signature: str | None = Field(default=None, max_length=256)


class BillingConfigApplied(Event):
    """The invoicer accepted configuration `config_version` of a tenant (it is now current).

    Carries the contact settings that version sets, so other services (the notifier) keep their
    own projection and use the contact settings in force when they act, not those copied into an
    older event. `submitted_at` is the command's `occurred_at`; versions of one tenant increase
    with it (docs/configuration.md, "Contact settings in emails").
    """

    tenant_id: str = Field(min_length=1)
    config_version: int = Field(ge=1)
    submitted_at: AwareDatetime
    billing_email: EmailStr
    email_notifications: bool
