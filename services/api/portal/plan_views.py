"""What the tenant's Plan page shows, from the catalog's plan versions and the API's
subscription view (pure functions, no I/O; docs/portal.md, "Plans and subscription").

Which change a plan card offers follows docs/plans.md: a plan in the same currency and billing
frequency with a larger flat amount is an upgrade (at once, prorated); any other plan in the
same currency takes effect at the end of the current period; another currency is refused
(cancel and subscribe again).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from contracts.plans import Plan
from services.api.portal import formatting as fmt
from services.api.portal.tenant_views import period_days

__all__ = ["CheckoutWait", "PlanCard", "checkout_wait", "is_upgrade", "limit_texts",
           "period_days", "period_text", "plan_cards", "price_text"]
from services.common.meters import meter_of

#: How a billing frequency reads after a price ("$49.00 per month").
PER = {"monthly": "per month", "quarterly": "per quarter", "annually": "per year"}
#: A period of each frequency, as the limits are counted.
PERIOD = {"monthly": "month", "quarterly": "quarter", "annually": "year"}

#: How long the Plan page reloads itself after the return from Stripe Checkout while the
#: subscription Checkout is still pending (then it says the confirmation has not arrived).
WAIT_LIMIT = timedelta(minutes=2)
#: How long it reloads itself after the return even without a pending Checkout: the moment
#: between the payments service reconciling Stripe's webhook and the invoicer starting it.
WAIT_GRACE = timedelta(seconds=10)
CheckoutWait = Literal["refresh", "late", "none"]

Offer = Literal["start", "upgrade", "downgrade", "current", "other_currency", "none"]


@dataclass(frozen=True)
class PlanCard:
    """One plan as a card: `offer` is what its button does (`start`: Select plan; `upgrade`
    or `downgrade`: Switch to this plan; `current`: the Current plan badge; `other_currency`
    or `none`: no button), `note` explains when a switch takes effect."""

    code: str
    version: int
    name: str
    description: str
    price: str
    limits: tuple[str, ...]
    offer: Offer
    note: str | None


def price_text(plan: Plan, locale: str) -> str:
    """The flat amount in the plan's currency per period: `$49.00 per month`."""
    return f"{fmt.money(plan.flat_amount, plan.currency, locale)} {PER[plan.billing_frequency]}"


def limit_texts(plan: Plan, locale: str) -> tuple[str, ...]:
    """One line per limit: `Computations: up to 1,000 computations per month (hard limit:
    further usage is refused)`."""
    per = PERIOD[plan.billing_frequency]
    lines = []
    for lim in plan.limits:
        meter = meter_of(lim.meter)
        kind = ("hard limit: further usage is refused" if lim.hard
                else "soft limit: usage beyond it is billed")
        lines.append(f"{meter.name}: up to {fmt.quantity(lim.limit, meter.unit, locale)} "
                     f"per {per} ({kind})")
    return tuple(lines)


def is_upgrade(current: Plan, target: Plan) -> bool:
    """Whether moving from `current` to `target` is an upgrade (docs/plans.md): same currency
    and billing frequency and a larger flat amount."""
    return (target.currency == current.currency
            and target.billing_frequency == current.billing_frequency
            and target.flat_amount > current.flat_amount)


def _offer(plan: Plan, version: int, current: Plan | None, current_version: int | None,
           period_end: str | None) -> tuple[Offer, str | None]:
    if current is None:
        return "start", None
    if plan.code == current.code and version == current_version:
        return "current", None
    if plan.currency != current.currency:
        return "other_currency", (f"Billed in {plan.currency}: to switch, cancel your "
                                  "subscription and subscribe again when it has ended.")
    if is_upgrade(current, plan):
        return "upgrade", ("Upgrade: takes effect now. The unused part of this period's fee is "
                           "credited and the rest of the period is charged at this plan's "
                           "price on your next invoice.")
    when = f" ({period_end})" if period_end else ""
    return "downgrade", f"Takes effect at the end of the current period{when}."


def plan_cards(plans: Sequence[tuple[int, Plan]], current: tuple[int, Plan] | None,
               period_end: str | None, locale: str, *, can_change: bool = True) -> list[PlanCard]:
    """The catalog's plans (version, plan) as cards, for a tenant whose active subscription
    is `current` (None: none) with its period ending on `period_end` (text, or None).
    `can_change` False (the subscription ends at the period's end, or a change waits) turns
    every switch into `none`."""
    cur_plan = current[1] if current else None
    cur_version = current[0] if current else None
    cards = []
    for version, plan in plans:
        offer, note = _offer(plan, version, cur_plan, cur_version, period_end)
        if not can_change and offer in ("upgrade", "downgrade"):
            offer, note = "none", None
        cards.append(PlanCard(plan.code, version, plan.name, plan.description,
                              price_text(plan, locale), limit_texts(plan, locale), offer, note))
    return cards


def period_text(start: datetime | None, end: datetime | None, zone: str,
                locale: str) -> str | None:
    """The current period as `Jun 1, 2013 – Jun 30, 2013` (its first and last day in `zone`),
    or None without bounds."""
    if start is None or end is None:
        return None
    first, last = period_days(start, end, zone, locale)
    return f"{first} – {last}"


def checkout_wait(elapsed: timedelta, *, pending: bool) -> CheckoutWait:
    """What the Plan page does `elapsed` after the browser came back from Stripe Checkout
    without an active subscription: `refresh` (reload in a few seconds) while the
    subscription Checkout is `pending` for up to `WAIT_LIMIT` (2 minutes), or without one
    for `WAIT_GRACE` (10 s); `late` (say Stripe's confirmation has not arrived, stop) once a
    pending Checkout has waited `WAIT_LIMIT`; `none` (nothing is pending: no waiting)."""
    if pending:
        return "refresh" if elapsed < WAIT_LIMIT else "late"
    return "refresh" if elapsed < WAIT_GRACE else "none"
