"""The interval a usage request asks for (docs/api-endpoints.md, "Usage").

Either a named `range` relative to the API process's clock or explicit `from`/`to` instants:

- `last_7_days`, `last_90_days`: [now - N days, now);
- `last_month`: the previous calendar month in the tenant's time zone, from 00:00 local on
  its first day to 00:00 local on the first day of the current month;
- `from`/`to`: ISO 8601 instants (without an offset: UTC) from 1970 to 9998, `to` after
  `from`, at most `MAX_DAYS` days apart.

No parameter at all means `last_7_days`.
"""

from datetime import UTC, datetime, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

Range = Literal["last_7_days", "last_month", "last_90_days"]
MAX_DAYS: Final = 366
DAYS: Final[dict[str, int]] = {"last_7_days": 7, "last_90_days": 90}


class BadWindow(ValueError):
    """The parameters do not name a valid interval; `param` is the offending one."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9999, 1, 1, tzinfo=UTC)


def _utc(value: datetime, param: str) -> datetime:
    try:
        at = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise BadWindow(param, f"{param} is out of range (1970 to 9998)") from exc
    if not EARLIEST <= at < LATEST:
        raise BadWindow(param, f"{param} is out of range (1970 to 9998)")
    return at


def usage_window(range_: Range | None, start: datetime | None, end: datetime | None,
                 now: datetime, zone: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC for the request's parameters (see the module docstring). Raises
    `BadWindow` when `range` is combined with `from`/`to`, when only one of `from`/`to` is
    given, when either is outside [1970, 9999), when `to` is not after `from`, or when they are
    more than `MAX_DAYS` days apart."""
    if range_ is not None and (start is not None or end is not None):
        raise BadWindow("range", "give either range or from/to, not both")
    if start is None and end is None:
        return _named(range_ or "last_7_days", now, zone)
    if start is None or end is None:
        raise BadWindow("from" if start is None else "to", "from and to go together")
    start, end = _utc(start, "from"), _utc(end, "to")
    if end <= start:
        raise BadWindow("to", "to must be after from")
    if end - start > timedelta(days=MAX_DAYS):
        raise BadWindow("to", f"from and to may be at most {MAX_DAYS} days apart")
    return start, end


def _named(range_: Range, now: datetime, zone: str) -> tuple[datetime, datetime]:
    if range_ in DAYS:
        return now - timedelta(days=DAYS[range_]), now
    local = now.astimezone(ZoneInfo(zone))
    this_month = local.date().replace(day=1)
    previous = (this_month - timedelta(days=1)).replace(day=1)
    tz = ZoneInfo(zone)
    first = datetime(previous.year, previous.month, 1, tzinfo=tz).astimezone(UTC)
    return first, datetime(this_month.year, this_month.month, 1, tzinfo=tz).astimezone(UTC)
