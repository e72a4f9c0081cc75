"""Subscriptions to catalog plans: the pure rules (docs/plans.md, "Subscriptions" and
"Proration"). No I/O here: `subscription_handlers.py` reads and writes the store and calls
these.

- A change to a plan in the same currency and billing frequency with a larger flat amount is
  an upgrade: in force at once. Any other change waits for the current period's end. Another
  currency is refused (`currency_mismatch`).
- Proration is by seconds (Stripe prorates to the second as well,
  https://docs.stripe.com/billing/subscriptions/prorations): per change at instant T in the
  period [S, E), a credit of the old fee and a charge of the new fee, each
  `fee x (E - T) / (E - S)` seconds, rounded half-up once per line. For a stub period the
  fees are the stub's exact day-prorated fees (`proration.prorate`'s rule, unrounded) before
  the seconds split.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Literal

from contracts import BillingConfigSubmitted, Plan
from contracts.config import Actor, BillingSettings
from services.common.errors import PermanentError
from services.invoicer.periods import Period, local_date
from services.invoicer.pricing import Line

#: Refusal reasons of subscription commands (audit and dead letter).
REASONS = ("forbidden", "plan_unknown", "already_subscribed", "not_subscribed",
           "currency_mismatch", "same_plan", "billing_email_required", "cancel_scheduled",
           "start_scheduled", "plan_version_not_current")
ALLOWED_ROLES = frozenset({"super", "tenant"})
#: New tenants' defaults (docs/plans.md, "Subscriptions").
DEFAULT_PAYMENT_DUE_DAYS = 14


@dataclass(frozen=True)
class SubscriptionView:
    """A tenant's subscription as the Billing API and the portal show it. `status` follows
    Stripe's subscription statuses (`active` until it ends, then `canceled`); the period
    bounds are UTC instants, [start, end); `scheduled_plan_code` and `scheduled_at` name a
    downgrade waiting for the period's end (None when there is none); `cancel_at_period_end`
    says the subscription ends at `current_period_end`."""

    tenant_id: str
    status: Literal["active", "canceled"]
    plan_code: str
    plan_version: int
    plan_name: str
    started_at: datetime
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    scheduled_plan_code: str | None
    scheduled_at: datetime | None


@dataclass(frozen=True)
class PlanChange:
    """One immediate change within a period, for its proration lines: at instant `at`, from a
    flat fee of `old_fee` (minor units per full period) named `old_name` to `new_fee` named
    `new_name`."""

    at: datetime
    old_name: str
    old_fee: int
    new_name: str
    new_fee: int


def is_upgrade(current: Plan, new: Plan) -> bool:
    """True when `new` takes effect at once: same currency and billing frequency and a larger
    flat amount than `current`."""
    return (new.currency == current.currency and new.billing_frequency ==
            current.billing_frequency and new.flat_amount > current.flat_amount)


def check_change(current: Plan, current_version: int, new: Plan, new_version: int) -> None:
    """Raise `PermanentError` `same_plan` (the plan version the tenant has) or
    `currency_mismatch` (cancel and subscribe again to change currency)."""
    if new.code == current.code and new_version == current_version:
        raise PermanentError("same_plan", f"the tenant is on plan {new.code!r} version "
                             f"{new_version} already")
    if new.currency != current.currency:
        raise PermanentError("currency_mismatch", f"plan {new.code!r} is in {new.currency}, "
                             f"the subscription is in {current.currency}: cancel and "
                             "subscribe again")


def _exact_fee(fee: int, period: Period) -> Fraction:
    """The period's exact flat fee: the whole fee, or the stub's day share (unrounded)."""
    if not period.is_stub:
        return Fraction(fee)
    assert period.grid_start is not None
    days = (period.end_date - period.start_date).days
    return Fraction(fee * days, (period.end_date - period.grid_start).days)


def round_half_up(value: Fraction) -> int:
    """`value` rounded half-up (away from zero at .5) to an integer."""
    sign = -1 if value < 0 else 1
    return sign * int((abs(value) * 2 + 1) // 2)


def remaining_share(period: Period, at: datetime) -> Fraction:
    """The share of `period` from `at` to its end, by seconds (0..1)."""
    total = (period.end - period.start).total_seconds()
    left = (period.end - max(min(at, period.end), period.start)).total_seconds()
    return Fraction(round(left * 1_000_000), round(total * 1_000_000))


def proration_lines(period: Period, changes: Sequence[PlanChange]) -> list[Line]:
    """Per change in `period` (in time order), the credit "Unused time on <old>" (negative)
    and the charge "Remaining time on <new>", each the period's exact fee x the remaining
    seconds' share, rounded half-up once per line (kind `proration`, minor units)."""
    lines: list[Line] = []
    for change in sorted(changes, key=lambda c: c.at):
        share = remaining_share(period, change.at)
        credit = round_half_up(-_exact_fee(change.old_fee, period) * share)
        charge = round_half_up(_exact_fee(change.new_fee, period) * share)
        lines.append(Line("proration", f"Unused time on {change.old_name}", credit))
        lines.append(Line("proration", f"Remaining time on {change.new_name}", charge))
    return lines


def plan_config(
    plan: Plan, *, tenant_id: str, at: datetime, event_id: str, actor: Actor,
    base: BillingConfigSubmitted | None, billing_email: str | None, tenant_name: str | None,
    timezone: str | None,
) -> BillingConfigSubmitted:
    """The configuration version a subscription writes at instant `at`: `base` (the tenant's
    current configuration) with the plan's flat amount, currency, billing frequency and price
    plan; for a new tenant (`base` None) a configuration from the plan with billing day = the
    start date's day (tenant zone), auto-generated invoices, payment due in 14 days, email
    notifications on. Raises `PermanentError("billing_email_required")` for a new tenant
    without `billing_email`."""
    if base is None:
        if not billing_email:
            raise PermanentError("billing_email_required", f"tenant {tenant_id!r} has no "
                                 "billing configuration: a billing email is required")
        zone = timezone or "UTC"
        day = local_date(at, zone)
        settings = BillingSettings(
            flat_rate_amount=plan.flat_amount, currency=plan.currency,
            billing_frequency=plan.billing_frequency, billing_email=billing_email,
            auto_generate_invoices=True, billing_day_of_month=day.day,
            payment_due_days=DEFAULT_PAYMENT_DUE_DAYS, email_notifications=True)
        return BillingConfigSubmitted(
            event_id=event_id, occurred_at=at, tenant_id=tenant_id, tenant_name=tenant_name,
            actor=actor, settings=settings, timezone=zone, effective_from=day,
            price_plan=plan.price_plan)
    settings = base.settings.model_copy(update={
        "flat_rate_amount": plan.flat_amount, "currency": plan.currency,
        "billing_frequency": plan.billing_frequency})
    return base.model_copy(update={
        "event_id": event_id, "occurred_at": at, "actor": actor, "settings": settings,
        "price_plan": plan.price_plan, "signature": None})


def keep_plan_pricing(
    command: BillingConfigSubmitted, current: BillingConfigSubmitted
) -> BillingConfigSubmitted:
    """An operator's configuration for a subscribed tenant: `command` with the pricing fields
    (flat amount, currency, billing frequency, price plan) of `current`, the version in force
    at the command's instant (the plan's; a downgrade already in force included)."""
    settings = command.settings.model_copy(update={
        "flat_rate_amount": current.settings.flat_rate_amount,
        "currency": current.settings.currency,
        "billing_frequency": current.settings.billing_frequency})
    return command.model_copy(update={"settings": settings, "price_plan": current.price_plan})
