"""Billing periods: pure date arithmetic, DST-safe (../shared/data/README.md, pricing rules).

A tenant's periods start at `effective_from` 00:00 in the tenant's time zone and step by 1, 3
or 12 months on `billing_day_of_month`; a day past a month's end means that month's last day
(31 -> 30 Apr, 28/29 Feb). Boundaries are computed as local *dates* first, from the month of
`effective_from` (month + k x step, never from the previous boundary, so 31 -> 30 Apr -> 31 May),
and only then localised with `zoneinfo`, so a DST change never shifts a boundary off midnight.
The first period ends on the first boundary after `effective_from` (a short first period when
`effective_from` is not itself a billing day).
"""

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

STEP_MONTHS = {"monthly": 1, "quarterly": 3, "annually": 12}


@dataclass(frozen=True)
class Period:
    """One billing period: [start, end) as UTC instants plus their local dates."""

    start: datetime
    end: datetime
    start_date: date
    end_date: date


def local_midnight(day: date, zone: str) -> datetime:
    """00:00 of `day` in IANA zone `zone`, as a UTC instant."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def local_date(instant: datetime, zone: str) -> date:
    """The calendar date of `instant` (tz-aware) in IANA zone `zone`."""
    return instant.astimezone(ZoneInfo(zone)).date()


def clipped_day(year: int, month: int, day: int) -> date:
    """`day` of the month, or the month's last day when the month is shorter."""
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def month_step(anchor: date, months: int, billing_day: int) -> date:
    """The billing day `months` months after `anchor`'s month."""
    index = anchor.year * 12 + (anchor.month - 1) + months
    return clipped_day(index // 12, index % 12 + 1, billing_day)


def boundaries(effective_from: date, frequency: str, billing_day: int) -> Iterator[date]:
    """Period boundaries as local dates: `effective_from`, then every later billing day on the
    frequency's grid (endless)."""
    step = STEP_MONTHS[frequency]
    yield effective_from
    k = 0
    while True:
        candidate = month_step(effective_from, k * step, billing_day)
        k += 1
        if candidate > effective_from:
            yield candidate


def periods_until(
    effective_from: date, frequency: str, billing_day: int, zone: str, until: datetime
) -> list[Period]:
    """Every period whose end instant is at or before `until` (the billing clock)."""
    found: list[Period] = []
    for period in iter_periods(effective_from, frequency, billing_day, zone):
        if period.end > until:
            return found
        found.append(period)
    return found  # pragma: no cover - iter_periods is endless


def iter_periods(
    effective_from: date, frequency: str, billing_day: int, zone: str
) -> Iterator[Period]:
    """The tenant's periods in order (endless)."""
    it = boundaries(effective_from, frequency, billing_day)
    start = next(it)
    for end in it:
        yield Period(local_midnight(start, zone), local_midnight(end, zone), start, end)
        start = end


def period_ending_on(
    effective_from: date, frequency: str, billing_day: int, zone: str, end_date: date
) -> Period | None:
    """The period whose local end date is `end_date`, or None when no period ends that day."""
    for period in iter_periods(effective_from, frequency, billing_day, zone):
        if period.end_date == end_date:
            return period
        if period.end_date > end_date:
            return None
    return None  # pragma: no cover


def due_date(issue_date: date, payment_due_days: int) -> date:
    """Issue date + `payment_due_days` (../shared/DESIGN.md, billing configuration)."""
    return issue_date + timedelta(days=payment_due_days)


def overdue_at(due: date, zone: str) -> datetime:
    """The instant an unpaid invoice becomes overdue: the end of its due date in the tenant's
    zone (00:00 local on the next day)."""
    return local_midnight(due + timedelta(days=1), zone)
