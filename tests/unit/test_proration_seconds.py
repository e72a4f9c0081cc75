"""Proration by seconds (docs/plans.md, "Proration"), property tests (hypothesis): for any
sequence of upgrades within a period, full or stub, the prorated lines plus the base fee sum
to the per-second split of each plan's fee within one minor unit per line, and every line is
within half a minor unit of its exact value."""

from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.invoicer.periods import Period
from services.invoicer.proration import flat_fee
from services.invoicer.subscriptions import PlanChange, proration_lines, round_half_up

pytestmark = pytest.mark.unit
START = datetime(2026, 3, 1, tzinfo=UTC)


def period_of(days: int, stub_of: int | None) -> Period:
    """A period of `days` days from START; a stub of a `stub_of`-day grid period if given."""
    end = START + timedelta(days=days)
    grid_start = None if stub_of is None else date(2026, 3, 1) - timedelta(days=stub_of - days)
    return Period(START, end, START.date(), end.date(), grid_start)


def exact_fee(fee: int, period: Period) -> Fraction:
    if not period.is_stub:
        return Fraction(fee)
    assert period.grid_start is not None
    return Fraction(fee * (period.end_date - period.start_date).days,
                    (period.end_date - period.grid_start).days)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Period, list[int], list[int]]:
    days = draw(st.integers(1, 92))
    stub_of = draw(st.one_of(st.none(), st.integers(days + 1, 366)))
    period = period_of(days, stub_of)
    seconds = days * 86_400
    offsets = sorted(draw(st.lists(st.integers(0, seconds - 1), min_size=1, max_size=6)))
    fees = draw(st.lists(st.integers(0, 10**9), min_size=len(offsets) + 1,
                         max_size=len(offsets) + 1))
    return period, fees, offsets


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_prorated_lines_and_base_fee_sum_to_the_per_second_split(
    scenario: tuple[Period, list[int], list[int]],
) -> None:
    period, fees, offsets = scenario
    changes = [PlanChange(START + timedelta(seconds=o), f"p{i}", fees[i], f"p{i + 1}",
                          fees[i + 1]) for i, o in enumerate(offsets)]
    lines = proration_lines(period, changes)
    total_seconds = int((period.end - period.start).total_seconds())
    bounds = [0, *offsets, total_seconds]
    exact_total = sum(exact_fee(fee, period) * (bounds[i + 1] - bounds[i]) / total_seconds
                      for i, fee in enumerate(fees))
    billed = flat_fee(fees[0], period).amount + sum(li.amount for li in lines)
    assert abs(billed - exact_total) <= len(lines) + 1
    for i, offset in enumerate(offsets):
        share = Fraction(total_seconds - offset, total_seconds)
        credit, charge = lines[2 * i], lines[2 * i + 1]
        assert abs(credit.amount + exact_fee(fees[i], period) * share) <= Fraction(1, 2)
        assert abs(charge.amount - exact_fee(fees[i + 1], period) * share) <= Fraction(1, 2)


def test_an_upgrade_after_ten_and_a_half_days_of_thirty_is_prorated_by_the_second() -> None:
    period = period_of(30, None)
    at = START + timedelta(days=10, hours=12)
    lines = proration_lines(period, [PlanChange(at, "Starter", 1000, "Pro", 3000)])
    # 19.5 of 30 days remain: 1000 x 0.65 = 650; 3000 x 0.65 = 1950
    assert [(li.kind, li.description, li.amount) for li in lines] == [
        ("proration", "Unused time on Starter", -650),
        ("proration", "Remaining time on Pro", 1950)]


def test_half_a_minor_unit_rounds_away_from_zero() -> None:
    assert [round_half_up(Fraction(x, 2)) for x in (1, 3, -1, -3)] == [1, 2, -1, -2]
