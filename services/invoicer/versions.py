"""Configuration versions over time and the chain of billing periods they cut (pure).

Rules (docs/billing-periods.md, "Version in force" and "The period chain"):

- The version *in force* at instant T is the one with the latest submission instant (the
  command's `occurred_at`; ties: the higher version number) at or before T; when no version
  was submitted by T, the first version. One exception: a version a subscription scheduled
  for a period's end (`scheduled`, docs/plans.md "Subscriptions") cuts the period that starts
  at its instant but never prices the one that ends there (`in_force(..., ending=True)`).
- The periods of a tenant form one chain: the first starts at 00:00 (tenant zone) of the
  current configuration's `effective_from`; every later one starts exactly where the last
  invoiced one ended. A period ends on the first billing date after its start on the grid of
  the version in force at its start, so a change of billing day or frequency takes effect at
  the next period boundary and yields one stub period up to the first date of the new grid.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from contracts import BillingConfigSubmitted
from services.invoicer.periods import Grid, Period, local_midnight


@dataclass(frozen=True)
class ConfigVersion:
    """One accepted configuration version: its number (1, 2, ...), the command, and whether a
    subscription scheduled it for a period's end (its `occurred_at`)."""

    number: int
    command: BillingConfigSubmitted
    scheduled: bool = False

    @property
    def submitted_at(self) -> datetime:
        """When the operator submitted it (the command's `occurred_at`)."""
        return self.command.occurred_at


def in_force(
    versions: Sequence[ConfigVersion], at: datetime, *, ending: bool = False
) -> ConfigVersion:
    """The version in force at instant `at`; with `ending`, the one that prices a period
    ending at `at` (a scheduled version submitted exactly at `at` does not count). Raises
    `LookupError` when `versions` is empty."""
    if not versions:
        raise LookupError("no configuration version")
    submitted = [v for v in versions if v.submitted_at < at or (
        v.submitted_at == at and not (ending and v.scheduled))]
    if not submitted:
        return min(versions, key=lambda v: v.number)
    return max(submitted, key=lambda v: (v.submitted_at, v.number))


def grid_of(command: BillingConfigSubmitted) -> Grid:
    """The billing grid of one configuration (anchored on its `effective_from` month)."""
    s = command.settings
    return Grid(command.effective_from, s.billing_frequency, s.billing_day_of_month,
                command.timezone)


def chain_start(versions: Sequence[ConfigVersion]) -> datetime:
    """Where a tenant's first period starts: `effective_from` 00:00 in the zone of the latest
    version (an operator may correct it until the first invoice is issued)."""
    latest = max(versions, key=lambda v: v.number).command
    return local_midnight(latest.effective_from, latest.timezone)


def iter_chain(versions: Sequence[ConfigVersion], start: datetime) -> Iterator[Period]:
    """The periods from instant `start` on (endless), each cut by the version in force at its
    start."""
    while True:
        period = grid_of(in_force(versions, start).command).period_from(start)
        yield period
        start = period.end


def chain_until(
    versions: Sequence[ConfigVersion], start: datetime, until: datetime
) -> list[Period]:
    """The periods from `start` whose end is at or before `until` (the billing clock)."""
    found: list[Period] = []
    for period in iter_chain(versions, start):
        if period.end > until:
            return found
        found.append(period)
    return found  # pragma: no cover - iter_chain is endless
