"""Pricing: usage charges, the flat fee, coupons, credits and adjustments (pure).

Rules (docs/invoicing.md): the included quantity is taken off first; `per_unit`, `graduated`,
`volume` and `package` price the rest; each line's amount is computed exactly in `Decimal`
(the `EXACT` context: any rounding raises instead of happening silently) and rounded ONCE,
half-up, to the currency's minor unit (ISO 4217 exponent from babel's CLDR data via
`contracts.money.minor_unit_exponent`); coupon, credit and negative adjustment lines shrink so
the total never goes below zero, and what a negative adjustment could not take off is carried
to the tenant's credit balance.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)

from contracts import Coupon, PriceCharge
from contracts.money import minor_unit_exponent, to_major_units
from services.common.invoice_document import TierRow

ZERO = Decimal(0)
#: Exact arithmetic on quantities and prices: room for any two Decimal128 operands (34 digits
#: each, any exponent) and every inexact result trapped, so a sum or product is exact or
#: raises (`Inexact`, `InvalidOperation`: a billing error), never silently rounded.
EXACT = Context(prec=400, rounding=ROUND_HALF_UP, Emax=999_999, Emin=-999_999,
                traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
#: BSON int64, the range every stored amount (minor units) must fit in.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class AmountOutOfRange(ArithmeticError):
    """An amount (minor units) outside the BSON int64 range: it cannot be stored exactly."""


def check_int64(amount: int, what: str) -> int:
    """`amount` unchanged when it fits BSON int64 (docs/invoicing.md, "Amounts fit int64");
    raises `AmountOutOfRange` naming `what` otherwise."""
    if not INT64_MIN <= amount <= INT64_MAX:
        raise AmountOutOfRange(f"{what}: {amount} minor units is outside the int64 range")
    return amount


@dataclass(frozen=True)
class Line:
    """An invoice line. `amount` in minor units (negative for coupon and credit); `quantity` and
    `unit_price` (major units) exact; `ref` names the credit id or the adjusted period."""

    kind: str
    description: str
    amount: int
    meter: str | None = None
    quantity: Decimal = Decimal(1)
    unit_price: Decimal | None = None
    ref: str | None = None


@dataclass(frozen=True)
class Adjustment:
    """Usage that arrived after `period_label` was invoiced: the meter's new total quantity and
    the new priced amount vs. what was billed for it (minor units)."""

    meter: str
    period_label: str
    quantity_delta: Decimal
    amount_delta: int
    unit_price: Decimal | None = None


@dataclass(frozen=True)
class CarriedCredit:
    """The part (minor units, > 0) of a negative adjustment that this invoice could not take
    off: it goes to the tenant's credit balance and is applied to the next invoices like a
    credit (docs/invoicing.md, "Reductions larger than the invoice")."""

    amount: int
    meter: str
    period_label: str


@dataclass(frozen=True)
class CreditBalance:
    """A credit's remaining balance (minor units), applied in `granted_at` order."""

    credit_id: str
    remaining: int
    granted_at: datetime
    reason: str


@dataclass(frozen=True)
class Draft:
    """A priced invoice: its lines, total, what it consumed (coupon, credits by id) and the
    credit it carries forward from negative adjustments."""

    lines: tuple[Line, ...]
    total: int
    coupon_applied: bool = False
    credits_used: dict[str, int] = field(default_factory=dict)
    carried: tuple[CarriedCredit, ...] = ()


def round_minor(exact_major: Decimal, currency: str) -> int:
    """Round an exact major-unit amount once, half-up, to `currency`'s minor unit; as an int."""
    exponent = minor_unit_exponent(currency)
    with localcontext(EXACT) as ctx:
        ctx.traps[Inexact] = False  # this is the one rounding
        quantum = Decimal(1).scaleb(-exponent)
        return int(exact_major.quantize(quantum, rounding=ROUND_HALF_UP).scaleb(exponent))


def charge_exact(charge: PriceCharge, quantity: Decimal) -> Decimal:
    """The exact amount (major units) `charge` asks for `quantity`, before any rounding.
    Raises a decimal error (`Inexact`, `InvalidOperation`) rather than round."""
    with localcontext(EXACT):
        billable = max(ZERO, quantity - charge.included_quantity)
        if charge.model == "per_unit":
            assert charge.unit_price is not None
            return billable * charge.unit_price
        if charge.model == "package":
            assert charge.unit_price is not None and charge.package_size
            whole, rest = divmod(billable, charge.package_size)  # exact, unlike a division
            return (whole + (1 if rest else 0)) * charge.unit_price
        if billable == 0:
            return ZERO
        return sum((t.amount for t in tier_slices(charge, quantity)), ZERO)


#: The part of a graduated or volume charge one tier prices (the invoice document shows it as
#: is): tier `index` (1-based), bounds, the `quantity` it prices, prices and exact `amount`.
TierSlice = TierRow


def tier_slices(charge: PriceCharge, quantity: Decimal) -> list[TierSlice]:
    """How a `graduated` or `volume` charge prices `quantity` (after `included_quantity`), tier
    by tier: graduated fills each tier in turn up to its `up_to`; volume prices every unit at
    the one tier the whole quantity falls in (docs/design.md, "Pricing"). Empty for
    other models and for nothing billable. The amounts add up exactly to `charge_exact`."""
    if charge.model not in ("graduated", "volume"):
        return []
    with localcontext(EXACT):
        billable = max(ZERO, quantity - charge.included_quantity)
        if billable == 0:
            return []
        slices, lower = [], ZERO
        for index, tier in enumerate(charge.tiers, start=1):
            if charge.model == "volume":
                if tier.up_to is None or billable <= tier.up_to:
                    return [TierSlice(index, lower, tier.up_to, billable, tier.unit_price,
                                      tier.flat_price,
                                      billable * tier.unit_price + tier.flat_price)]
                lower = tier.up_to
                continue
            upper = billable if tier.up_to is None else min(billable, tier.up_to)
            if upper > lower:
                slices.append(TierSlice(index, lower, tier.up_to, upper - lower,
                                        tier.unit_price, tier.flat_price,
                                        (upper - lower) * tier.unit_price + tier.flat_price))
            if tier.up_to is None or billable <= tier.up_to:
                break
            lower = tier.up_to
        return slices


def usage_line(charge: PriceCharge, quantity: Decimal, currency: str) -> Line:
    """One usage line for a priced meter: quantity = the meter's total over the period."""
    description = charge.description or f"{charge.meter} ({charge.model.replace('_', ' ')})"
    if charge.included_quantity:
        description += f", {charge.included_quantity} included"
    return Line(
        kind="usage",
        description=description,
        meter=charge.meter,
        quantity=quantity,
        unit_price=charge.unit_price if charge.model == "per_unit" else None,
        amount=round_minor(charge_exact(charge, quantity), currency),
    )


def coupon_applies(coupon: Coupon, redemptions: int, code_redemptions: int = 0) -> bool:
    """Whether `coupon` applies to the next invoice of a tenant, given how many of its
    invoices it already reduced (`redemptions`) and how many tenants redeemed the code so far
    (`code_redemptions`, all tenants).

    Duration: once = the first invoice it is in force for; repeating = N invoices; forever.
    `max_redemptions` limits how many tenants may redeem the code, across all tenants (as
    Stripe's coupon `max_redemptions`): a tenant that has not used it yet gets it only while
    `code_redemptions < max_redemptions`; one that already redeemed it keeps it for its
    duration (docs/invoicing.md, "Coupon redemptions").
    """
    if coupon.max_redemptions is not None and redemptions == 0 and (
        code_redemptions >= coupon.max_redemptions
    ):
        return False
    if coupon.duration == "once":
        return redemptions == 0
    if coupon.duration == "repeating":
        assert coupon.duration_in_periods is not None
        return redemptions < coupon.duration_in_periods
    return True


def compose_invoice(
    *,
    currency: str,
    flat_rate_amount: int,
    charges: Sequence[PriceCharge],
    usage: dict[str, Decimal],
    adjustments: Sequence[Adjustment] = (),
    coupon: Coupon | None = None,
    coupon_redemptions: int = 0,
    credits: Sequence[CreditBalance] = (),
    issued_at: datetime | None = None,
    code_redemptions: int = 0,
    prorations: Sequence[Line] = (),
) -> Draft:
    """Price one invoice.

    `prorations`: a subscription's plan-change lines of the period, placed right after the flat
    fee (docs/plans.md, "Proration").

    Lines, in order: the flat fee; one usage line per priced meter (quantity = the meter's total
    over the period, 0 when unused); adjustments for earlier periods (a negative adjustment
    shrinks so the running total stays >= 0, and the rest becomes a `CarriedCredit`); the
    coupon (`coupon_applies` with `coupon_redemptions` of this tenant and `code_redemptions`
    of all tenants; at most the running total); credits granted at or before `issued_at`,
    oldest first, each at most its remaining balance and the running total. The total is the
    sum of the lines and never negative.

    Raises `AmountOutOfRange` when a line or the total does not fit BSON int64, and decimal
    errors (`InvalidOperation`) when a quantity is too large to price exactly.
    """
    flat = to_major_units(flat_rate_amount, currency)
    lines = [Line("flat_fee", "Flat fee", flat_rate_amount, unit_price=flat), *prorations]
    lines += [usage_line(c, usage.get(c.meter, ZERO), currency) for c in charges]
    running = sum(line.amount for line in lines)
    carried: list[CarriedCredit] = []
    for adj in adjustments:
        amount = max(adj.amount_delta, -running)
        description = f"Late usage of {adj.meter} for {adj.period_label}"
        if amount != adj.amount_delta:
            carried.append(CarriedCredit(amount - adj.amount_delta, adj.meter, adj.period_label))
            description += " (the rest is carried to the credit balance)"
        lines.append(
            Line("adjustment", description, amount, meter=adj.meter,
                 quantity=adj.quantity_delta, unit_price=adj.unit_price, ref=adj.period_label)
        )
        running += amount
    coupon_applied = False
    if coupon is not None and coupon_applies(coupon, coupon_redemptions, code_redemptions):
        coupon_applied = True
        off = min(coupon.amount_off, running)
        if off > 0:
            lines.append(Line("coupon", f"Coupon {coupon.code}", -off, ref=coupon.code))
            running -= off
    used: dict[str, int] = {}
    for credit in sorted(credits, key=lambda c: (c.granted_at, c.credit_id)):
        if issued_at is not None and credit.granted_at > issued_at:
            continue
        take = min(credit.remaining, running)
        if take <= 0:
            continue
        lines.append(Line("credit", f"Credit: {credit.reason}", -take, ref=credit.credit_id))
        used[credit.credit_id] = take
        running -= take
    for line in lines:
        check_int64(line.amount, line.description)
    check_int64(running, "invoice total")
    for credit_carried in carried:
        check_int64(credit_carried.amount, "carried credit")
    return Draft(tuple(lines), running, coupon_applied, used, tuple(carried))
