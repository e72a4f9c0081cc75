"""Clock travel over billing period boundaries: day 31 through February (leap and non-leap),
quarterly, annual, and DST changes in the tenant's zone."""

from datetime import UTC, date, datetime, timedelta

import pytest

from services.invoicer.periods import (
    Grid,
    due_date,
    iter_periods,
    overdue_at,
    period_ending_on,
    periods_until,
)

pytestmark = pytest.mark.unit


def ends(effective: date, frequency: str, day: int, zone: str, count: int) -> list[date]:
    it = iter_periods(effective, frequency, day, zone)
    return [next(it).end_date for _ in range(count)]


def test_day_31_steps_through_february_of_a_non_leap_year_to_its_last_day() -> None:
    assert ends(date(2013, 12, 31), "monthly", 31, "UTC", 4) == [
        date(2014, 1, 31), date(2014, 2, 28), date(2014, 3, 31), date(2014, 4, 30)]


def test_day_31_steps_through_february_of_a_leap_year_to_the_29th() -> None:
    assert ends(date(2023, 12, 31), "monthly", 31, "UTC", 3) == [
        date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31)]


def test_a_short_month_does_not_drag_later_boundaries_back() -> None:
    # 30 June is day 31 clipped; July's boundary is back on the 31st.
    assert ends(date(2013, 6, 30), "monthly", 31, "UTC", 3) == [
        date(2013, 7, 31), date(2013, 8, 31), date(2013, 9, 30)]


def test_quarterly_periods_step_three_months_on_the_billing_day() -> None:
    assert ends(date(2013, 6, 15), "quarterly", 15, "Africa/Nairobi", 3) == [
        date(2013, 9, 15), date(2013, 12, 15), date(2014, 3, 15)]
    assert ends(date(2023, 11, 30), "quarterly", 30, "UTC", 2) == [
        date(2024, 2, 29), date(2024, 5, 30)]


def test_annual_periods_step_a_year_and_keep_the_29th_of_february_rule() -> None:
    assert ends(date(2013, 6, 1), "annually", 1, "Europe/Amsterdam", 2) == [
        date(2014, 6, 1), date(2015, 6, 1)]
    assert ends(date(2024, 2, 29), "annually", 29, "UTC", 4) == [
        date(2025, 2, 28), date(2026, 2, 28), date(2027, 2, 28), date(2028, 2, 29)]


def test_a_first_period_ends_on_the_first_billing_day_after_effective_from() -> None:
    assert ends(date(2013, 6, 10), "monthly", 15, "UTC", 2) == [date(2013, 6, 15),
                                                                date(2013, 7, 15)]


def test_boundaries_stay_at_local_midnight_across_a_dst_change() -> None:
    # Los Angeles springs forward on 10 March 2024 and falls back on 3 November 2024.
    periods = list(periods_until(date(2024, 2, 29), "monthly", 29, "America/Los_Angeles",
                                 datetime(2024, 12, 1, tzinfo=UTC)))
    starts = {p.start_date: p.start for p in periods}
    assert starts[date(2024, 2, 29)] == datetime(2024, 2, 29, 8, tzinfo=UTC)  # PST
    assert starts[date(2024, 3, 29)] == datetime(2024, 3, 29, 7, tzinfo=UTC)  # PDT
    assert starts[date(2024, 10, 29)] == datetime(2024, 10, 29, 7, tzinfo=UTC)  # PDT
    assert periods[-1].end == datetime(2024, 11, 29, 8, tzinfo=UTC)  # PST again
    march = next(p for p in periods if p.start_date == date(2024, 2, 29))
    assert march.end - march.start == timedelta(days=29, hours=-1)  # one hour lost
    for earlier, later in zip(periods, periods[1:], strict=False):
        assert earlier.end == later.start


def test_the_clock_catches_up_only_periods_that_have_ended() -> None:
    zone = "Africa/Nairobi"
    end = datetime(2013, 9, 14, 21, tzinfo=UTC)  # 15 Sep 00:00 in Nairobi
    assert periods_until(date(2013, 6, 15), "quarterly", 15, zone, end - timedelta(seconds=1)) == []
    [period] = periods_until(date(2013, 6, 15), "quarterly", 15, zone, end)
    assert (period.start, period.end) == (datetime(2013, 6, 14, 21, tzinfo=UTC), end)


def test_an_invoice_becomes_overdue_at_the_end_of_its_due_date_in_the_tenant_zone() -> None:
    due = due_date(date(2013, 7, 29), 7)
    assert due == date(2013, 8, 5)
    assert overdue_at(due, "America/Los_Angeles") == datetime(2013, 8, 6, 7, tzinfo=UTC)


def test_an_operator_names_a_period_by_its_local_end_date() -> None:
    period = period_ending_on(date(2013, 6, 1), "annually", 1, "Europe/Amsterdam",
                              date(2014, 6, 1))
    assert period is not None and period.start == datetime(2013, 5, 31, 22, tzinfo=UTC)
    assert period_ending_on(date(2013, 6, 1), "annually", 1, "UTC", date(2013, 10, 1)) is None


def test_a_grid_finds_billing_dates_on_both_sides_of_any_day() -> None:
    quarterly = Grid(date(2013, 6, 1), "quarterly", 1, "UTC")
    assert quarterly.date_after(date(2013, 8, 1)) == date(2013, 9, 1)
    assert quarterly.date_at_or_before(date(2013, 8, 1)) == date(2013, 6, 1)
    assert quarterly.date_at_or_before(date(2013, 3, 1)) == date(2013, 3, 1)
    assert quarterly.date_after(date(2012, 12, 31)) == date(2013, 3, 1)
    day31 = Grid(date(2013, 6, 30), "monthly", 31, "UTC")
    assert day31.date_at_or_before(date(2013, 6, 10)) == date(2013, 5, 31)
    assert day31.date_after(date(2013, 6, 30)) == date(2013, 7, 31)


def test_a_period_starting_off_the_grid_is_a_stub_of_the_full_period_containing_it() -> None:
    grid = Grid(date(2013, 6, 1), "monthly", 15, "Europe/Amsterdam")
    stub = grid.period_from(datetime(2013, 7, 31, 22, tzinfo=UTC))  # 1 Aug 00:00 local
    assert (stub.start_date, stub.end_date, stub.grid_start) == (
        date(2013, 8, 1), date(2013, 8, 15), date(2013, 7, 15))
    assert stub.is_stub and stub.end == datetime(2013, 8, 14, 22, tzinfo=UTC)
    full = grid.period_from(stub.end)
    assert not full.is_stub and full.end_date == date(2013, 9, 15)
