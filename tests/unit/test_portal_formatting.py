"""The portal's formatting: the locale negotiated from Accept-Language, amounts, unit prices,
dates in the tenant's zone and quantities with every digit (docs/portal.md)."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.api.portal.formatting import (
    date_in,
    datetime_in,
    hour_in,
    meter_of,
    money,
    negotiate,
    quantity,
    unit_price,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("header", "locale"), [
    ("de-DE,de;q=0.9,en;q=0.5", "de_DE"),
    ("fr-CA;q=0.2, en-GB", "en_GB"),
    ("de-XX", "de"),
    ("xx-YY", "en_US"),
    ("en;q=0", "en_US"),
    ("*", "en_US"),
    (None, "en_US"),
    ("", "en_US"),
    ("de;q=abc", "en_US"),
    ("de," * 400, "en_US"),
])
def test_the_locale_is_negotiated_from_accept_language(header: str | None, locale: str) -> None:
    assert negotiate(header) == locale


def test_amounts_and_unit_prices_follow_the_locale_and_keep_sub_cent_digits() -> None:
    assert money(123450, "USD") == "$1,234.50"
    assert money(123450, "EUR", "de_DE") == "1.234,50\xa0€"
    assert money(1496109, "KES") == "KES 14,961.09"
    assert unit_price("0.005", "USD") == "$0.005"
    assert unit_price(Decimal(29), "USD") == "$29.00"
    assert unit_price("0.5", "KES") == "KES 0.50"
    with pytest.raises(ValueError):
        money(1, "XXY")


def test_instants_are_shown_in_the_tenant_zone() -> None:
    late_utc = datetime(2013, 6, 14, 21, 30, tzinfo=UTC)
    assert date_in(late_utc, "Africa/Nairobi") == "Jun 15, 2013"
    assert date_in(late_utc) == "Jun 14, 2013"
    assert date_in(date(2013, 6, 14), "Africa/Nairobi") == "Jun 14, 2013"
    assert datetime_in(late_utc, "Africa/Nairobi", "de_DE") == "15.06.2013, 00:30"
    assert hour_in(late_utc, "Africa/Nairobi") == "00:00"
    assert hour_in(datetime(2013, 6, 14, 21, 30), None) == "21:00"  # naive: UTC


def test_quantities_keep_every_digit_and_carry_their_unit() -> None:
    assert quantity(Decimal("1043.38470000"), "vCPU-hours") == "1,043.3847 vCPU-hours"
    assert quantity("1234567.000001", "GB", "de_DE") == "1.234.567,000001 GB"
    assert quantity(Decimal("1E+3")) == "1,000"
    assert quantity(0, "GB") == "0 GB"


def test_meters_have_readable_names_and_unknown_ones_show_their_key() -> None:
    assert (meter_of("cpu_hours").name, meter_of("cpu_hours").unit) == ("CPU", "vCPU-hours")
    assert meter_of("memory_gb_hours").unit == "GB-hours"
    assert (meter_of("gpu_minutes").name, meter_of("gpu_minutes").unit) == (
        "gpu_minutes", "units")
