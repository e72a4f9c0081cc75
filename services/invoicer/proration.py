"""The flat fee of a stub period, prorated by elapsed days, and the pure pricing step of a
period (`price_period`).

Rule (docs/billing-periods.md, "Stub periods"): a stub pays
`flat_rate_amount x stub days / days of the full grid period that contains it`, computed
exactly and rounded half-up once to the currency's minor unit. Days are calendar days of the
tenant's zone (local dates), so a DST change never makes a day count as 23 or 25 hours. A full
period pays the whole flat fee. The model is Stripe's billing cycle anchor with a prorated
first period (https://docs.stripe.com/billing/subscriptions/billing-cycle); unlike Stripe, which
prorates to the second, the unit here is the tenant's calendar day.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from contracts import BillingConfigSubmitted
from services.invoicer.ledger import Ledger
from services.invoicer.periods import Period
from services.invoicer.pricing import Adjustment, Draft, Line, compose_invoice


@dataclass(frozen=True)
class FlatFee:
    """The flat fee charged for one period: `amount` in minor units, and the days it covers
    out of the full grid period's days (equal for a full period)."""

    amount: int
    days: int
    full_days: int

    @property
    def prorated(self) -> bool:
        """True when only part of the full period's fee is charged."""
        return self.days != self.full_days

    @property
    def description(self) -> str:
        """The invoice line's text."""
        if not self.prorated:
            return "Flat fee"
        return f"Flat fee, prorated {self.days}/{self.full_days} days"


def prorate(amount: int, days: int, full_days: int) -> int:
    """`amount` (minor units, >= 0) x `days` / `full_days`, rounded half-up once (exact integer
    arithmetic). Raises `ValueError` unless 0 <= days <= full_days and full_days > 0."""
    if amount < 0 or full_days <= 0 or not 0 <= days <= full_days:
        raise ValueError(f"cannot prorate {amount} over {days}/{full_days} days")
    return (2 * amount * days + full_days) // (2 * full_days)


def flat_fee(flat_rate_amount: int, period: Period) -> FlatFee:
    """The flat fee of `period`: the whole `flat_rate_amount` (minor units) for a full period,
    prorated by days for a stub."""
    days = (period.end_date - period.start_date).days
    if not period.is_stub:
        return FlatFee(flat_rate_amount, days, days)
    assert period.grid_start is not None
    full_days = (period.end_date - period.grid_start).days
    return FlatFee(prorate(flat_rate_amount, days, full_days), days, full_days)


def describe_flat_fee(draft: Draft, fee: FlatFee) -> Draft:
    """`draft` (priced with `fee.amount` as its flat fee) with the flat fee line saying how it
    was prorated; unchanged for a full period."""
    if not fee.prorated:
        return draft
    lines = tuple(replace(li, description=fee.description) if li.kind == "flat_fee" else li
                  for li in draft.lines)
    return replace(draft, lines=lines)


def price_period(
    config: BillingConfigSubmitted, period: Period, ledger: Ledger, usage: dict[str, Decimal],
    adjustments: Sequence[Adjustment], coupon_uses: int, code_redemptions: int,
    prorations: Sequence[Line] = (), base_fee: int | None = None,
) -> Draft:
    """The priced draft of `period` (pure): the flat fee (prorated for a stub), the usage
    charges of `usage` (each meter's total, exact), late-usage `adjustments`, the coupon
    (`coupon_uses` by this tenant, `code_redemptions` by every tenant) and the ledger's
    credits in the configuration's currency (docs/invoicing.md, docs/billing-periods.md).
    A subscription's upgrades within the period: `base_fee` (the flat amount of the plan at
    the period's start, instead of the configuration's) and their `prorations` lines
    (docs/plans.md, "Proration"). Raises decimal errors or `AmountOutOfRange` when it cannot
    be priced."""
    s = config.settings
    fee = flat_fee(s.flat_rate_amount if base_fee is None else base_fee, period)
    draft = compose_invoice(
        currency=s.currency, flat_rate_amount=fee.amount, charges=config.price_plan.charges,
        usage=usage, adjustments=adjustments, coupon=config.coupon,
        coupon_redemptions=coupon_uses, credits=ledger.credits(config), issued_at=period.end,
        code_redemptions=code_redemptions, prorations=prorations,
    )
    return describe_flat_fee(draft, fee)
