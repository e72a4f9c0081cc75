"""Operator commands about a tenant's money besides its configuration, on
`billing.tenant-config.v1` (docs/configuration.md, "Credits and coupons").

Like `BillingConfigSubmitted`, each is accepted only when `signature` is the HMAC-SHA256 of its
canonical JSON under the platform's command signing key (`services/common/signing.py`) and the
actor's role allows it; anything else is refused, audited and dead-lettered with reason
`forbidden`. `event_id` is the idempotency key: a redelivered command changes nothing.

Keys on the topic: the tenant id for `CreditGranted` and `CouponRedeemed`, `coupon:{code}` for
`CouponCreated`.
"""

from typing import Literal, Self

from pydantic import Field, model_validator

from contracts.base import Event
from contracts.config import Actor, check_coupon_duration
from contracts.money import CurrencyCode, MinorUnits


class CreditGranted(Event):
    """A goodwill credit of `amount` minor units of `currency` for `tenant_id`, granted by
    `actor` (role `super`) for `reason`; it reduces invoices in that currency issued at or after
    `occurred_at` until used up. `credit_id` is unique (the API uses the event id)."""

    tenant_id: str = Field(min_length=1)
    credit_id: str = Field(min_length=1)
    amount: MinorUnits = Field(gt=0)
    currency: CurrencyCode
    reason: str = Field(min_length=1, max_length=500)
    actor: Actor
    signature: str | None = Field(default=None, max_length=256)


class CouponCreated(Event):
    """A coupon in the platform's catalog: `amount_off` minor units of `currency` for `once`,
    `repeating` (`duration_in_periods` invoices) or `forever`, redeemable by at most
    `max_redemptions` tenants (None: unlimited). `code` is customer-facing and hard to guess
    (8 to 64 characters with lower case, upper case and digits). Actor role `super`."""

    code: str = Field(min_length=8, max_length=64)
    amount_off: MinorUnits = Field(gt=0)
    currency: CurrencyCode
    duration: Literal["once", "repeating", "forever"]
    duration_in_periods: int | None = Field(default=None, ge=1)
    max_redemptions: int | None = Field(default=None, ge=1)
    actor: Actor
    signature: str | None = Field(default=None, max_length=256)

    @model_validator(mode="after")
    def _periods_for_repeating(self) -> Self:
        check_coupon_duration(self.duration, self.duration_in_periods)
        return self


class CouponRedeemed(Event):
    """`tenant_id` redeems catalog coupon `code`: it reduces the tenant's invoices issued after
    `occurred_at` as the coupon says, in place of the configuration's coupon and of a coupon
    redeemed earlier; redeeming the code the tenant already has changes nothing. Refused
    (`coupon_unknown`, `coupon_exhausted`, `currency_mismatch`) when the code is not in the
    catalog, has reached `max_redemptions`, or is in another currency than the tenant's.
    Actor role `super`, or
    `tenant` acting for its own tenant (`actor.user_id` names the key)."""

    tenant_id: str = Field(min_length=1)
    code: str = Field(min_length=1, max_length=64)
    actor: Actor
    signature: str | None = Field(default=None, max_length=256)
