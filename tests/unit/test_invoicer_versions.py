"""Configuration versions over time: which one is in force, and the chain of periods they cut
while operators change the billing day and frequency (property-based)."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import BillingConfigSubmitted
from services.invoicer.periods import Grid, Period, local_date
from services.invoicer.versions import (
    ConfigVersion,
    chain_start,
    chain_until,
    grid_of,
    in_force,
)

pytestmark = pytest.mark.unit
ZONES = ["UTC", "Europe/Amsterdam", "America/Los_Angeles", "Africa/Nairobi", "Pacific/Auckland"]


def version(number: int, submitted: datetime, *, day: int = 1, frequency: str = "monthly",
            zone: str = "UTC", effective_from: date = date(2013, 6, 1)) -> ConfigVersion:
    body: dict[str, Any] = {
        "tenant_id": "acme", "actor": {"user_id": "ops-admin", "role": "super"},
        "occurred_at": submitted.isoformat(), "timezone": zone,
        "effective_from": effective_from.isoformat(),
        "settings": {"flat_rate_amount": 1000, "currency": "USD",
                     "billing_frequency": frequency, "billing_email": "billing@acme.example",
                     "auto_generate_invoices": True, "billing_day_of_month": day,
                     "payment_due_days": 14, "email_notifications": True},
    }
    return ConfigVersion(number, BillingConfigSubmitted.model_validate(body))


def test_the_version_in_force_is_the_latest_submitted_at_or_before_the_instant() -> None:
    v1 = version(1, datetime(2013, 5, 20, tzinfo=UTC))
    v2 = version(2, datetime(2013, 7, 10, tzinfo=UTC), day=15)
    v3 = version(3, datetime(2013, 7, 10, tzinfo=UTC), day=20)  # same instant: higher wins
    versions = [v1, v2, v3]
    assert in_force(versions, datetime(2013, 7, 9, tzinfo=UTC)) is v1
    assert in_force(versions, datetime(2013, 7, 10, tzinfo=UTC)) is v3
    assert in_force([v1, v2], datetime(2013, 8, 1, tzinfo=UTC)) is v2


def test_before_any_submission_the_first_version_is_in_force() -> None:
    # Configurations applied today for a replay of 2013: the first one prices 2013.
    v1 = version(1, datetime(2026, 1, 5, tzinfo=UTC))
    v2 = version(2, datetime(2026, 1, 6, tzinfo=UTC), day=15)
    assert in_force([v2, v1], datetime(2013, 7, 1, tzinfo=UTC)) is v1
    with pytest.raises(LookupError):
        in_force([], datetime(2013, 7, 1, tzinfo=UTC))


def test_a_change_takes_effect_at_the_next_boundary_with_one_stub_up_to_the_new_grid() -> None:
    versions = [version(1, datetime(2013, 5, 20, tzinfo=UTC)),
                version(2, datetime(2013, 7, 10, tzinfo=UTC), day=15)]
    periods = chain_until(versions, chain_start(versions), datetime(2013, 10, 1, tzinfo=UTC))
    assert [(p.start_date.isoformat(), p.end_date.isoformat(), p.is_stub) for p in periods] == [
        ("2013-06-01", "2013-07-01", False), ("2013-07-01", "2013-08-01", False),
        ("2013-08-01", "2013-08-15", True), ("2013-08-15", "2013-09-15", False)]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[ConfigVersion], list[datetime]]:
    """A first version, then changes of billing day and/or frequency (zone kept), each
    submitted at some instant; and the billing clock's stops, one after each submission."""
    zone = draw(st.sampled_from(ZONES))
    effective = draw(st.dates(min_value=date(2012, 1, 1), max_value=date(2014, 12, 31)))
    first_submitted = datetime(effective.year, effective.month, effective.day,
                               tzinfo=UTC) + timedelta(hours=draw(st.integers(-60 * 24, 30 * 24)))
    days = st.integers(1, 31)
    frequencies = st.sampled_from(["monthly", "quarterly", "annually"])
    versions = [version(1, first_submitted, day=draw(days), frequency=draw(frequencies),
                        zone=zone, effective_from=effective)]
    submitted = first_submitted
    stops = []
    for number in range(2, draw(st.integers(2, 6)) + 1):
        submitted += timedelta(hours=draw(st.integers(0, 200 * 24)))
        versions.append(version(number, submitted, day=draw(days), frequency=draw(frequencies),
                                zone=zone, effective_from=effective))
        stop = submitted + timedelta(hours=draw(st.integers(0, 60 * 24)))
        stops.append(max([stop, *stops]))
    stops.append(max(stops, default=submitted) + timedelta(days=draw(st.integers(300, 1500))))
    return versions, stops


@settings(max_examples=200, deadline=None)
@given(histories())
def test_invoiced_periods_tile_time_over_any_sequence_of_schedule_changes(
    history: tuple[list[ConfigVersion], list[datetime]],
) -> None:
    versions, stops = history
    invoiced: list[tuple[Period, Grid]] = []
    for i, clock in enumerate(stops):
        # the cycle at this stop knows the versions accepted so far (one more per stop)
        known = versions[: i + 2]
        start = invoiced[-1][0].end if invoiced else chain_start(known)
        for period in chain_until(known, start, clock):
            invoiced.append((period, grid_of(in_force(known, period.start).command)))
        assert not invoiced or invoiced[-1][0].end <= clock

    periods = [p for p, _ in invoiced]
    assert not periods or periods[0].start == chain_start(versions[:2])
    for earlier, later in zip(periods, periods[1:], strict=False):
        assert earlier.end == later.start, "no gap and no overlap"
    for i, (period, grid) in enumerate(invoiced):
        assert period.start < period.end
        assert period.end_date == grid.date_after(local_date(period.start, grid.zone))
        if period.is_stub and i > 0:  # a stub only right after the grid changed
            assert invoiced[i - 1][1] != grid
