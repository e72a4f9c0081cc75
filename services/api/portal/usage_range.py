"""The interval the Usage page shows for a preset range (docs/portal.md, "Usage").

The presets mean what the usage endpoint's `range` means (`services.api.usage_window`) on the
API's clock. When a tenant's newest aggregated usage hour ends before that interval even
starts (the interval holds no usage at all: usage stopped arriving long ago, or the data was
replayed from the past as the demo does), the page anchors the preset at the end of that hour
instead of now, so it shows "the 7 days up to the newest usage" rather than an empty week:

    anchor = newest_hour + 1 h    when that is at or before the preset's start
    [start, end) = the preset computed with `now = anchor`

A window with some usage is never moved: a tenant whose usage paused for two days still sees
the last 7 days, and "Last month" stays the calendar month before this one.

A client reproduces the page's numbers with two calls: `GET /v1/tenants/{id}/usage?range=R`
(its `as_of` is the newest hour before the preset's end) then, if `as_of + 1 h` is at or
before that answer's `start`, `GET /v1/tenants/{id}/usage?from=<start>&to=<end>` with the
preset computed at `as_of + 1 h` (`anchored_window`).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from services.api.usage_window import Range, usage_window

#: Usage is aggregated by the hour: an hour's usage is complete at its end.
HOUR: Final = timedelta(hours=1)
LABELS: Final[dict[str, str]] = {"last_7_days": "Last 7 days", "last_month": "Last month",
                                 "last_90_days": "Last 90 days"}
#: What an anchored window says on the page.
ANCHORED_NOTES: Final[dict[str, str]] = {
    "last_7_days": "showing the 7 days up to the newest usage",
    "last_month": "showing the last full month before the newest usage",
    "last_90_days": "showing the 90 days up to the newest usage",
}


@dataclass(frozen=True)
class Window:
    """[start, end) in UTC; `anchored` when it ends at the newest usage rather than now."""

    start: datetime
    end: datetime
    anchored: bool


def anchored_window(range_: Range, now: datetime, zone: str,
                    newest_hour: datetime | None) -> Window:
    """The page's interval for preset `range_` at API clock `now` (aware, UTC) for a tenant in
    IANA zone `zone` whose newest aggregated usage hour starts at `newest_hour` (None: no
    usage). Raises `services.api.usage_window.BadWindow` only for an instant outside the
    supported years."""
    start, end = usage_window(range_, None, None, now, zone)
    if newest_hour is None or newest_hour + HOUR > start:
        return Window(start, end, anchored=False)
    start, end = usage_window(range_, None, None, newest_hour + HOUR, zone)
    return Window(start, end, anchored=True)
