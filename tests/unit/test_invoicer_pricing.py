"""Pricing: each model, included quantities, coupons, credits, and property tests (hypothesis):
lines sum to the total, the total never goes below zero, a line is rounded exactly once."""

import math
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import Coupon, PriceCharge, PriceTier
from services.invoicer.pricing import (
    Adjustment,
    AmountOutOfRange,
    CreditBalance,
    charge_exact,
    compose_invoice,
    coupon_applies,
    round_minor,
)

pytestmark = pytest.mark.unit
D = Decimal
T0 = datetime(2013, 7, 1, tzinfo=UTC)


def per_unit(meter: str, price: str, included: str = "0") -> PriceCharge:
    return PriceCharge(meter=meter, model="per_unit", unit_price=D(price),
                       included_quantity=D(included))


GRADUATED = PriceCharge(meter="cpu_hours", model="graduated", tiers=(
    PriceTier(up_to=D(500), unit_price=D("5.00")), PriceTier(unit_price=D("4.00"))))


def test_graduated_tiers_price_each_slice_at_its_own_rate() -> None:
    assert charge_exact(GRADUATED, D("400")) == D("2000.00")
    assert charge_exact(GRADUATED, D("612.5")) == D("2500.00") + D("112.5") * 4


def test_volume_prices_all_units_at_the_tier_the_quantity_reaches() -> None:
    volume = PriceCharge(meter="m", model="volume", tiers=(
        PriceTier(up_to=D(10), unit_price=D(2)), PriceTier(unit_price=D(1), flat_price=D(5))))
    assert charge_exact(volume, D(10)) == D(20)
    assert charge_exact(volume, D(11)) == D(16)


def test_package_charges_each_started_block() -> None:
    package = PriceCharge(meter="m", model="package", unit_price=D("3"), package_size=D(100))
    assert charge_exact(package, D(0)) == 0
    assert charge_exact(package, D("100.0001")) == D(6)


def test_the_included_quantity_is_taken_off_first() -> None:
    assert charge_exact(per_unit("cpu_hours", "0.042", "100"), D("99")) == 0
    assert charge_exact(per_unit("cpu_hours", "0.042", "100"), D("150.5")) == D("2.121")


def test_amounts_round_once_half_up_to_the_currency_minor_unit() -> None:
    assert round_minor(D("0.005"), "USD") == 1
    assert round_minor(D("0.0049999"), "USD") == 0
    assert round_minor(D("12.5"), "JPY") == 13
    assert round_minor(D("1.0005"), "KWD") == 1001


def test_a_once_coupon_applies_to_the_first_invoice_only() -> None:
    coupon = Coupon(code="HooliWelcome5x", amount_off=500, duration="once")
    first = compose_invoice(currency="USD", flat_rate_amount=1900, charges=[], usage={},
                            coupon=coupon, coupon_redemptions=0)
    assert [li.amount for li in first.lines] == [1900, -500] and first.coupon_applied
    second = compose_invoice(currency="USD", flat_rate_amount=1900, charges=[], usage={},
                             coupon=coupon, coupon_redemptions=1)
    assert second.total == 1900 and not second.coupon_applied


def test_repeating_forever_and_redemption_limits() -> None:
    repeating = Coupon(code="Rep3Times9x", amount_off=1, duration="repeating",
                       duration_in_periods=3)
    assert [coupon_applies(repeating, n) for n in range(4)] == [True, True, True, False]
    limited = Coupon(code="Forever2Max", amount_off=1, duration="forever", max_redemptions=2)
    assert [coupon_applies(limited, n) for n in range(3)] == [True, True, True]


def test_max_redemptions_counts_tenants_redeeming_the_code_not_a_tenants_own_invoices() -> None:
    limited = Coupon(code="Forever2Max", amount_off=1, duration="forever", max_redemptions=2)
    assert coupon_applies(limited, 0, code_redemptions=1)
    assert not coupon_applies(limited, 0, code_redemptions=2), "two tenants took it already"
    assert coupon_applies(limited, 7, code_redemptions=2), "a tenant that redeemed it keeps it"
    once = Coupon(code="OnceOnly1x", amount_off=1, duration="once", max_redemptions=5)
    assert not coupon_applies(once, 1, code_redemptions=1)


def test_a_credit_applies_from_its_grant_and_carries_its_remaining_balance() -> None:
    credit = CreditBalance("c1", 2500, datetime(2013, 7, 15, 9, 30, tzinfo=UTC), "outage")
    before = compose_invoice(currency="USD", flat_rate_amount=1000, charges=[], usage={},
                             credits=[credit], issued_at=datetime(2013, 7, 1, tzinfo=UTC))
    assert before.total == 1000 and before.credits_used == {}
    after = compose_invoice(currency="USD", flat_rate_amount=1000, charges=[], usage={},
                            credits=[credit], issued_at=datetime(2013, 8, 1, tzinfo=UTC))
    assert after.total == 0 and after.credits_used == {"c1": 1000}
    assert after.lines[-1].kind == "credit" and after.lines[-1].amount == -1000


def test_one_usage_line_per_priced_meter_even_when_unused() -> None:
    draft = compose_invoice(currency="EUR", flat_rate_amount=0,
                            charges=[per_unit("cpu_hours", "0.035"), per_unit("bw", "0.08")],
                            usage={"cpu_hours": D("10.5")})
    assert [(li.kind, li.meter, li.quantity, li.amount) for li in draft.lines] == [
        ("flat_fee", None, 1, 0), ("usage", "cpu_hours", D("10.5"), 37), ("usage", "bw", 0, 0)]


quantities = st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False,
                         allow_infinity=False)
prices = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(
    usage=st.lists(quantities, min_size=1, max_size=4),
    price_list=st.lists(prices, min_size=4, max_size=4),
    flat=st.integers(0, 10**6),
    coupon_off=st.integers(0, 10**7),
    credit_amounts=st.lists(st.integers(0, 10**7), max_size=3),
    adjustment=st.integers(-10**7, 10**7),
    currency=st.sampled_from(["USD", "JPY", "KWD", "KES", "EUR"]),
)
def test_lines_sum_to_a_total_that_is_never_negative_and_each_line_is_rounded_once(
    usage: list[Decimal], price_list: list[Decimal], flat: int, coupon_off: int,
    credit_amounts: list[int], adjustment: int, currency: str,
) -> None:
    charges = [per_unit(f"m{i}", str(price_list[i])) for i in range(len(usage))]
    draft = compose_invoice(
        currency=currency, flat_rate_amount=flat, charges=charges,
        usage={f"m{i}": q for i, q in enumerate(usage)},
        adjustments=[Adjustment("m0", "earlier", D(0), adjustment)],
        coupon=Coupon(code="PropTest9x", amount_off=coupon_off, duration="forever"),
        credits=[CreditBalance(f"c{i}", a, T0, "goodwill") for i, a in enumerate(credit_amounts)],
        issued_at=T0,
    )
    assert sum(li.amount for li in draft.lines) == draft.total
    assert draft.total >= 0
    applied = sum(li.amount for li in draft.lines if li.kind == "adjustment")
    assert applied - sum(c.amount for c in draft.carried) == adjustment, "nothing is lost"
    exponent = {"USD": 2, "JPY": 0, "KWD": 3, "KES": 2, "EUR": 2}[currency]
    for li in draft.lines:
        if li.kind == "usage":
            exact = Fraction(li.quantity) * Fraction(li.unit_price or 0) * 10**exponent
            assert li.amount == math.floor(exact + Fraction(1, 2))  # half-up, once, exactly
        if li.kind in ("coupon", "credit"):
            assert li.amount < 0


def test_an_amount_beyond_int64_is_refused_before_anything_is_stored() -> None:
    with pytest.raises(AmountOutOfRange, match="int64"):
        compose_invoice(currency="USD", flat_rate_amount=0, charges=[per_unit("m", "0.50")],
                        usage={"m": D("1E+20")})
    edge = compose_invoice(currency="USD", flat_rate_amount=2**63 - 1, charges=[], usage={})
    assert edge.total == 2**63 - 1


def test_a_negative_adjustment_beyond_the_invoice_carries_the_rest_as_a_credit() -> None:
    june = "2013-06-01..2013-07-01"
    draft = compose_invoice(currency="USD", flat_rate_amount=1000, charges=[], usage={},
                            adjustments=[Adjustment("storage_gb", june, D(-500), -5000)])
    assert [(li.kind, li.amount) for li in draft.lines] == [("flat_fee", 1000),
                                                            ("adjustment", -1000)]
    assert draft.total == 0
    assert [(c.amount, c.meter, c.period_label) for c in draft.carried] == [
        (4000, "storage_gb", june)]
    nothing_to_take = compose_invoice(currency="USD", flat_rate_amount=0, charges=[], usage={},
                                      adjustments=[Adjustment("m", june, D(-1), -70)])
    assert [(li.kind, li.amount) for li in nothing_to_take.lines] == [
        ("flat_fee", 0), ("adjustment", 0)], "the correction is still shown"
    assert [c.amount for c in nothing_to_take.carried] == [70]


def test_package_pricing_counts_started_blocks_exactly_for_any_size() -> None:
    package = PriceCharge(meter="m", model="package", unit_price=D("0.01"), package_size=D(3))
    assert charge_exact(package, D(10)) == D("0.04")
    assert charge_exact(package, D("1E+33")) == D("3333333333333333333333333333333.34")
