"""The flat fee of stub periods: prorated by local calendar days and rounded half-up once.
Expected figures are worked out by hand in the comments."""

from datetime import UTC, date, datetime

import pytest

from services.invoicer.periods import Grid, iter_periods, local_midnight
from services.invoicer.pricing import compose_invoice
from services.invoicer.proration import describe_flat_fee, flat_fee, prorate

pytestmark = pytest.mark.unit


def test_a_first_period_off_the_billing_day_pays_its_share_of_the_grid_period_rounded_once(
) -> None:
    # 10 Jun .. 15 Jun = 5 days of the grid period 15 May .. 15 Jun = 31 days.
    # 10.00 x 5 / 31 = 1.6129.. -> 1.61; rounding a daily rate first would give 5 x 0.32 = 1.60.
    fee = flat_fee(1000, next(iter_periods(date(2013, 6, 10), "monthly", 15, "UTC")))
    assert (fee.amount, fee.days, fee.full_days) == (161, 5, 31)
    assert fee.description == "Flat fee, prorated 5/31 days"


def test_an_exact_half_minor_unit_rounds_up() -> None:
    # 30 Jun .. 15 Jul = 15 days of 15 Jun .. 15 Jul = 30 days: 10.01 / 2 = 5.005 -> 5.01.
    fee = flat_fee(1001, next(iter_periods(date(2013, 6, 30), "monthly", 15, "UTC")))
    assert (fee.amount, fee.days, fee.full_days) == (501, 15, 30)


def test_a_quarterly_stub_counts_the_days_of_the_quarter_that_contains_it() -> None:
    # 20 Jun .. 15 Sep = 10 + 31 + 31 + 15 = 87 days of 15 Jun .. 15 Sep = 92 days.
    # KES 2500.00 x 87 / 92 = 2364.1304.. -> 2364.13.
    period = next(iter_periods(date(2013, 6, 20), "quarterly", 15, "Africa/Nairobi"))
    fee = flat_fee(250000, period)
    assert (fee.amount, fee.days, fee.full_days) == (236413, 87, 92)


def test_the_stub_after_a_billing_day_change_pays_its_share_of_the_new_grid_period() -> None:
    # The new grid bills on the 15th; the stub 1 Aug .. 15 Aug = 14 days of 15 Jul .. 15 Aug
    # = 31 days: 10.00 x 14 / 31 = 4.516.. -> 4.52.
    stub = Grid(date(2013, 6, 1), "monthly", 15, "UTC").period_from(
        datetime(2013, 8, 1, tzinfo=UTC))
    assert (flat_fee(1000, stub).amount, flat_fee(1000, stub).full_days) == (452, 31)


def test_the_stub_after_a_change_to_quarterly_pays_its_share_of_the_quarter() -> None:
    # Quarterly on the 1st from June: 1 Jun, 1 Sep. The stub 1 Aug .. 1 Sep = 31 days of
    # 1 Jun .. 1 Sep = 92 days: 30.00 x 31 / 92 = 10.1086.. -> 10.11.
    stub = Grid(date(2013, 6, 1), "quarterly", 1, "UTC").period_from(
        datetime(2013, 8, 1, tzinfo=UTC))
    assert flat_fee(3000, stub).amount == 1011


def test_days_are_local_calendar_days_across_a_dst_change_and_a_leap_february() -> None:
    # Los Angeles springs forward on 10 Mar 2024. 5 Mar .. 20 Mar = 15 days of
    # 20 Feb .. 20 Mar 2024 = 29 days: 10.00 x 15 / 29 = 5.1724.. -> 5.17.
    zone = "America/Los_Angeles"
    period = next(iter_periods(date(2024, 3, 5), "monthly", 20, zone))
    assert period.start == local_midnight(date(2024, 3, 5), zone)
    assert flat_fee(1000, period).amount == 517
    # Day 31 in a leap February: 10 Feb .. 29 Feb = 19 of 31 Jan .. 29 Feb = 29 days.
    # 29.00 x 19 / 29 = 19.00 exactly.
    assert flat_fee(2900, next(iter_periods(date(2024, 2, 10), "monthly", 31, "UTC"))).amount == (
        1900)


def test_a_full_period_pays_the_whole_flat_fee() -> None:
    fee = flat_fee(4900, next(iter_periods(date(2013, 6, 1), "monthly", 1, "UTC")))
    assert (fee.amount, fee.prorated, fee.description) == (4900, False, "Flat fee")


def test_prorating_refuses_impossible_fractions() -> None:
    assert prorate(0, 3, 30) == 0
    for args in [(100, 31, 30), (100, 1, 0), (-1, 1, 30)]:
        with pytest.raises(ValueError):
            prorate(*args)


def test_the_flat_fee_line_of_a_stub_says_how_it_was_prorated() -> None:
    period = next(iter_periods(date(2013, 6, 10), "monthly", 15, "UTC"))
    fee = flat_fee(1000, period)
    draft = describe_flat_fee(
        compose_invoice(currency="USD", flat_rate_amount=fee.amount, charges=(), usage={}), fee)
    assert [(li.kind, li.description, li.amount) for li in draft.lines] == [
        ("flat_fee", "Flat fee, prorated 5/31 days", 161)]
    assert draft.total == 161
    full = flat_fee(1000, next(iter_periods(date(2013, 6, 15), "monthly", 15, "UTC")))
    unchanged = compose_invoice(currency="USD", flat_rate_amount=1000, charges=(), usage={})
    assert describe_flat_fee(unchanged, full) is unchanged
