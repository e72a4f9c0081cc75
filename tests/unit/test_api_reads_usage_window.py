"""The usage endpoint's interval: named ranges on the API's clock (last month in the tenant's
zone), explicit from/to, and every invalid combination refused with the offending parameter."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.api.usage_window import BadWindow, usage_window

NOW = datetime(2013, 10, 15, 12, 30, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_named_ranges_end_now_and_last_month_is_the_previous_local_calendar_month() -> None:
    assert usage_window("last_7_days", None, None, NOW, "UTC") == (NOW - timedelta(days=7), NOW)
    assert usage_window("last_90_days", None, None, NOW, "UTC") == (
        NOW - timedelta(days=90), NOW)
    assert usage_window(None, None, None, NOW, "UTC") == (NOW - timedelta(days=7), NOW)
    assert usage_window("last_month", None, None, NOW, "UTC") == (utc(2013, 9, 1),
                                                                   utc(2013, 10, 1))
    assert usage_window("last_month", None, None, NOW, "Asia/Kolkata") == (
        utc(2013, 8, 31, 18, 30), utc(2013, 9, 30, 18, 30))
    # 14:00 UTC on 30 September is already 1 October in Auckland: last month is September
    early = utc(2013, 9, 30, 14)
    assert usage_window("last_month", None, None, early, "Pacific/Auckland") == (
        utc(2013, 8, 31, 12), utc(2013, 9, 30, 11))


def test_from_to_is_taken_as_given_in_utc_naive_meaning_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert usage_window(None, datetime(2013, 9, 1, 2, tzinfo=plus2), datetime(2013, 9, 2),
                        NOW, "UTC") == (utc(2013, 9, 1), utc(2013, 9, 2))
    assert usage_window(None, utc(2013, 1, 1), utc(2014, 1, 2), NOW, "UTC")[1] == utc(
        2014, 1, 2)


@pytest.mark.parametrize(("range_", "start", "end", "param"), [
    ("last_month", utc(2013, 9, 1), utc(2013, 9, 2), "range"),
    (None, utc(2013, 9, 1), None, "to"),
    (None, None, utc(2013, 9, 1), "from"),
    (None, utc(2013, 9, 2), utc(2013, 9, 2), "to"),
    (None, utc(2013, 9, 2), utc(2013, 9, 1), "to"),
    (None, utc(2013, 1, 1), utc(2014, 1, 3), "to"),
])
def test_invalid_windows_name_the_offending_parameter(
    range_: str | None, start: datetime | None, end: datetime | None, param: str,
) -> None:
    with pytest.raises(BadWindow) as caught:
        usage_window(range_, start, end, NOW, "UTC")  # type: ignore[arg-type]
    assert caught.value.param == param


@pytest.mark.parametrize("start", [
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
    datetime(1969, 12, 31, tzinfo=UTC),
])
def test_instants_outside_what_the_platform_stores_are_refused_not_crashed(
    start: datetime,
) -> None:
    with pytest.raises(BadWindow) as refused:
        usage_window(None, start, start + timedelta(days=1), NOW, "UTC")
    assert refused.value.param == "from"
