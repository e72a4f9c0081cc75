"""Plans, subscriptions and usage limits (docs/plans.md, docs/limits.md).

Commands on `billing.tenant-config.v1` (signed like `BillingConfigSubmitted`: HMAC-SHA256 of
the canonical JSON under the platform's command signing key; `event_id` is the idempotency
key): `PlanSubmitted` (key `plan:{code}`, actor role `super`) and `SubscriptionRequested` (key
the tenant id; actor role `super`, or `tenant` acting for its own tenant).

Facts the invoicer publishes on `billing.tenant.v1` (key the tenant id): `SubscriptionChanged`
and `UsageLimitsChanged`. The payments service publishes `SubscriptionCheckoutCompleted` on
`billing.payment.v1` once Stripe's signed `checkout.session.completed` webhook for a
subscription's setup-mode Checkout Session is reconciled. The usage collector publishes
`UsageThresholdReached` on `billing.usage-alerts.v1`.
"""

import re
import uuid
from typing import Literal, Self

from pydantic import AwareDatetime, EmailStr, Field, field_validator, model_validator

from contracts.base import Contract, Event
from contracts.config import Actor, PricePlan, TimeZoneName
from contracts.money import CurrencyCode, MinorUnits, Quantity

#: A plan code: lower-case letters, digits, `-` and `_`, 2 to 64 characters, starting with a
#: letter or digit (it appears in URLs and on invoices).
PLAN_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")

BillingFrequency = Literal["monthly", "quarterly", "annually"]


def check_plan_code(code: str) -> str:
    """Return `code` if it is a valid plan code (`PLAN_CODE`); raise `ValueError` otherwise."""
    if not PLAN_CODE.match(code):
        raise ValueError("a plan code is 2 to 64 of a-z, 0-9, '-' and '_', starting with a-z "
                         "or 0-9")
    return code


class PlanLimit(Contract):
    """A limit on one meter per billing period: `limit` in the meter's unit (> 0). A `hard`
    limit makes the entitlement check answer `allowed: false` once the period's usage reaches
    it; a soft one only alerts, and usage beyond it is billed by the plan's charges (overage)."""

    meter: str = Field(min_length=1, max_length=64)
    limit: Quantity = Field(gt=0)
    hard: bool = False


class Plan(Contract):
    """One version of a plan in the catalog: what a subscriber pays (`flat_amount` minor units
    of `currency` per `billing_frequency` period, plus the usage charges of `price_plan`) and
    the `limits` per meter that come with it (at most one per meter)."""

    code: str
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=1000)
    currency: CurrencyCode
    billing_frequency: BillingFrequency
    flat_amount: MinorUnits
    price_plan: PricePlan = PricePlan()
    limits: tuple[PlanLimit, ...] = ()

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        return check_plan_code(value)

    @model_validator(mode="after")
    def _one_limit_per_meter(self) -> Self:
        meters = [lim.meter for lim in self.limits]
        if len(meters) != len(set(meters)):
            raise ValueError("at most one limit per meter")
        return self


class PlanSubmitted(Event):
    """Create a plan, or a new version of it (every accepted submission of a code is the next
    version, 1, 2, ...; subscriptions stay on the version they have until migrated). Actor role
    `super`."""

    plan: Plan
    actor: Actor
    signature: str | None = Field(default=None, max_length=256)


class SubscriptionRequested(Event):
    """A tenant's subscription command.

    - `start`: subscribe to `plan_code` (version `plan_version`, default the current one),
      from `occurred_at`. `billing_email` (from the tenant's billing customer) is required
      when the tenant has no billing configuration yet; `timezone` is used only then (default
      UTC).
    - `change`: move to `plan_code`. A dearer flat amount (an upgrade) takes effect at once,
      with prorated flat-fee lines on the period's invoice; otherwise (a downgrade) at the end of
      the current period.
    - `cancel`: end the subscription at the end of the current period (the last invoice still
      bills the period's usage).

    Actor role `super`, or `tenant` acting for its own tenant.
    """

    tenant_id: str = Field(min_length=1)
    action: Literal["start", "change", "cancel"]
    plan_code: str | None = None
    plan_version: int | None = Field(default=None, ge=1)
    billing_email: EmailStr | None = None
    tenant_name: str | None = Field(default=None, max_length=200)
    timezone: TimeZoneName | None = None
    actor: Actor
    signature: str | None = Field(default=None, max_length=256)

    @model_validator(mode="after")
    def _plan_for_start_and_change(self) -> Self:
        if (self.action == "cancel") != (self.plan_code is None):
            raise ValueError("plan_code is required for start and change, and only for them")
        return self


class SubscriptionCheckoutCompleted(Event):
    """Stripe confirmed (signed `checkout.session.completed`) the setup-mode Checkout Session a
    tenant opened to subscribe without a card on file: the card is now the tenant's default
    payment method, and the invoicer starts the subscription as a `start` of `plan_code`
    version `plan_version` at `completed_at`. `event_id` is derived from the Checkout Session
    id, so Stripe's redeliveries start it once."""

    tenant_id: str = Field(min_length=1)
    checkout_session_id: str = Field(min_length=1)
    plan_code: str
    plan_version: int | None = Field(default=None, ge=1)
    billing_email: EmailStr | None = None
    tenant_name: str | None = Field(default=None, max_length=200)
    timezone: TimeZoneName | None = None
    completed_at: AwareDatetime


SubscriptionStatus = Literal["active", "canceled"]


class SubscriptionChanged(Event):
    """A tenant's subscription after a change. `change`: `started`, `upgraded`,
    `downgrade_scheduled` (to `scheduled_plan_code` at `effective_at`), `downgraded`,
    `cancel_scheduled` (ends at `effective_at`), `ended`. `status` follows Stripe's
    subscription statuses (`active` until it ends, then `canceled`)."""

    tenant_id: str = Field(min_length=1)
    change: Literal["started", "upgraded", "downgrade_scheduled", "downgraded",
                    "cancel_scheduled", "ended"]
    status: SubscriptionStatus
    plan_code: str
    plan_version: int = Field(ge=1)
    scheduled_plan_code: str | None = None
    effective_at: AwareDatetime
    cancel_at_period_end: bool = False


class UsageLimitWindow(Contract):
    """The limits that apply to usage whose time is in [`period_start`, `period_end`): one
    billing period of the tenant."""

    period_start: AwareDatetime
    period_end: AwareDatetime
    limits: tuple[PlanLimit, ...] = ()

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        return self


class UsageLimitsChanged(Event):
    """The tenant's limits per billing period as the invoicer knows them now: the current
    period's window and the next one's (fewer when the subscription ends; none when it has
    ended). `version` increases with every change of one tenant; a consumer keeps the highest
    it has seen and ignores older ones (Kafka may deliver a message again)."""

    tenant_id: str = Field(min_length=1)
    version: int = Field(ge=1)
    windows: tuple[UsageLimitWindow, ...] = ()


#: The percentages of a limit at which `UsageThresholdReached` is published.
THRESHOLDS: tuple[int, ...] = (80, 100)


def threshold_event_id(tenant_id: str, meter: str, period_start: str, threshold: int) -> str:
    """The event id of the one `UsageThresholdReached` of (tenant, meter, period, threshold):
    a UUID5 of those four values, so every path that finds the crossing produces the same id.
    `period_start` is the window's start as RFC 3339 text in UTC."""
    name = f"{tenant_id}|{meter}|{period_start}|{threshold}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"billing:usage-threshold:{name}"))


class UsageThresholdReached(Event):
    """A tenant's usage of `meter` in the period [`period_start`, `period_end`) reached
    `threshold_percent` (80 or 100) of its plan's `limit`; `used` is the period's aggregate
    when it was noticed (>= threshold_percent % of limit). Exactly one per (tenant, meter,
    period, threshold): `event_id` is `threshold_event_id(...)`."""

    tenant_id: str = Field(min_length=1)
    meter: str = Field(min_length=1)
    period_start: AwareDatetime
    period_end: AwareDatetime
    threshold_percent: Literal[80, 100]
    limit: Quantity
    used: Quantity
    hard: bool
