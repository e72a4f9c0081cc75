"""Billing periods: pure date arithmetic, DST-safe (docs/billing-periods.md, "Grid").

A configuration's grid is its billing dates: `billing_day_of_month` every 1, 3 or 12 months
counted from the month of `effective_from`; a day past a month's end means that month's last day
(31 -> 30 Apr, 28/29 Feb). Dates are computed as local *dates* first, from the anchor month
(month + k x step, never from the previous boundary, so 31 -> 30 Apr -> 31 May), and only then
localised with `zoneinfo`, so a DST change never shifts a boundary off midnight. A period ends on
the first grid date after its start; one starting off the grid is a stub of the full grid period
that contains it. Which grid cuts which period: `services/invoicer/versions.py`.
"""

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

STEP_MONTHS = {"monthly": 1, "quarterly": 3, "annually": 12}


@dataclass(frozen=True)
class Period:
    """One billing period: [start, end) as UTC instants plus their local dates.

    `grid_start` is the local start date of the full period of the grid that contains this one
    (None: the period is itself a full period); a period with `grid_start < start_date` is a
    stub (docs/billing-periods.md, "Stub periods").
    """

    start: datetime
    end: datetime
    start_date: date
    end_date: date
    grid_start: date | None = None

    @property
    def is_stub(self) -> bool:
        """True when the period is shorter than the full grid period that contains it."""
        return self.grid_start is not None and self.grid_start < self.start_date


@dataclass(frozen=True)
class Grid:
    """A configuration's billing dates: day `billing_day` (clipped to the month's end) every
    `STEP_MONTHS[frequency]` months counted from `anchor`'s month, in both directions, at 00:00
    in IANA zone `zone` (docs/billing-periods.md, "Grid")."""

    anchor: date
    frequency: str
    billing_day: int
    zone: str

    def _date(self, k: int) -> date:
        return month_step(self.anchor, k * STEP_MONTHS[self.frequency], self.billing_day)

    def _index(self, day: date) -> int:
        months = (day.year - self.anchor.year) * 12 + day.month - self.anchor.month
        return months // STEP_MONTHS[self.frequency]

    def date_after(self, day: date) -> date:
        """The first billing date strictly after local date `day`."""
        k = self._index(day) - 1
        while self._date(k) <= day:
            k += 1
        return self._date(k)

    def date_at_or_before(self, day: date) -> date:
        """The last billing date at or before local date `day`."""
        k = self._index(day) + 1
        while self._date(k) > day:
            k -= 1
        return self._date(k)

    def period_from(self, start: datetime) -> Period:
        """The period that starts at instant `start` and ends on the first billing date after
        it (a stub when `start` is not itself on the grid)."""
        start_date = local_date(start, self.zone)
        end_date = self.date_after(start_date)
        grid_start = self.date_at_or_before(start_date)
        return Period(start, local_midnight(end_date, self.zone), start_date, end_date,
                      None if grid_start == start_date else grid_start)


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
    grid = Grid(effective_from, frequency, billing_day, zone)
    start = local_midnight(effective_from, zone)
    while True:
        period = grid.period_from(start)
        yield period
        start = period.end


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
    """Issue date + `payment_due_days` (docs/design.md#periods)."""
    return issue_date + timedelta(days=payment_due_days)


def overdue_at(due: date, zone: str) -> datetime:
    """The instant an unpaid invoice becomes overdue: the end of its due date in the tenant's
    zone (00:00 local on the next day)."""
    return local_midnight(due + timedelta(days=1), zone)
