"""How the portal shows amounts, dates, quantities and meters (docs/portal.md).

- **Locale**: negotiated from the browser's `Accept-Language` header (its q-values honoured)
  against the locales babel knows (CLDR); `en_US` when nothing matches.
- **Money**: minor units of an ISO 4217 currency formatted for the locale, exactly as the API's
  `Money.formatted` and the invoice PDF do (`services.common.invoice_pdf.format_money`).
- **Dates**: calendar dates as they are; instants converted to the tenant's IANA time zone
  first (an invoice's timeline and the usage's "as of" hour are in the tenant's zone).
- **Quantities**: every digit kept (usage is metered to many decimal places and an invoice's
  quantity is never rounded), grouped for the locale, followed by the meter's unit.
- **Meters**: readable names and units by meter key, from `services.common.meters` (the
  invoice PDF reads the same table); an unknown meter shows its key.

The Jinja filters `money`, `date`, `datetime` and `quantity` are registered on the portal's
environment by `register(env)`; they read the locale from the template's `request`.
"""

from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo

from babel import Locale, localedata
from babel.dates import format_date, format_time
from fastapi import Request
from jinja2 import Environment, pass_context
from jinja2.runtime import Context

from services.common.money_format import (
    DEFAULT_LOCALE,
    format_money,
    format_price,
    format_quantity,
)

#: Accept-Language headers longer than this are ignored (a browser sends a few dozen bytes).
MAX_HEADER: Final = 500


@cache
def _known() -> tuple[str, ...]:
    return tuple(localedata.locale_identifiers())


@lru_cache(maxsize=256)
def negotiate(header: str | None) -> str:
    """The babel locale identifier (`de_DE`, `fr`) best matching an `Accept-Language` header
    such as `de-CH,de;q=0.9,en;q=0.5` (RFC 9110 section 12.5.4: higher q first, `q=0`
    excluded); `DEFAULT_LOCALE` for a missing, oversized or unmatched header."""
    if not header or len(header) > MAX_HEADER:
        return DEFAULT_LOCALE
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and tag != "*" and weight > 0:
            ranked.append((-weight, position, tag.replace("-", "_")))
    wanted = [tag for _, _, tag in sorted(ranked)]
    found = Locale.negotiate(wanted, _known(), sep="_") if wanted else None
    if found is None:
        # `de_XX` (an unknown region) still reads German: try the languages alone.
        languages = [tag.split("_")[0] for tag in wanted]
        found = Locale.negotiate(languages, _known(), sep="_") if languages else None
    return str(found) if found is not None else DEFAULT_LOCALE


def locale_of(request: Request) -> str:
    """The locale of the browser making `request` (`negotiate` of its Accept-Language)."""
    return negotiate(request.headers.get("accept-language"))


def money(minor: int, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """`minor` units of `currency` for `locale`: `$1,234.50`, `1.234,50 €`, `KES 14,961.09`.
    Raises `ValueError` for an unknown currency."""
    return format_money(minor, currency, locale)


def unit_price(major: Decimal | str, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """A unit price in MAJOR units (`0.005`) formatted like an amount, with at least the
    currency's minor digits and every further digit kept: `$0.005`, `$29.00`, `KES 0.50`."""
    return format_price(Decimal(str(major)), currency, locale)


def date_in(value: datetime | date, zone: str | None = None,
            locale: str = DEFAULT_LOCALE) -> str:
    """A date for people (`Jun 15, 2013`, `15.06.2013`): an instant is first converted to the
    IANA time zone `zone` (an aware instant without `zone` keeps its own offset; a naive one
    is taken as UTC); a calendar `date` is shown as it is."""
    if isinstance(value, datetime):
        value = _local(value, zone).date()
    return format_date(value, format="medium", locale=locale)


def datetime_in(value: datetime, zone: str | None = None, locale: str = DEFAULT_LOCALE) -> str:
    """An instant's date and time (to the minute) in the IANA time zone `zone`:
    `Jun 15, 2013, 3:00 AM`."""
    local = _local(value, zone)
    return (f"{format_date(local.date(), format='medium', locale=locale)}, "
            f"{format_time(local.timetz(), format='short', locale=locale)}")


def hour_in(value: datetime, zone: str | None = None) -> str:
    """The instant's hour in `zone` as `HH:00` (24 h): usage is aggregated by the hour."""
    return f"{_local(value, zone):%H}:00"


def _local(value: datetime, zone: str | None) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(zone)) if zone else aware


def quantity(value: Decimal | str | int, unit: str | None = None,
             locale: str = DEFAULT_LOCALE) -> str:
    """A quantity with every digit kept and grouped for `locale`, then its unit:
    `1,043.3847 vCPU-hours`; trailing zeros after the point are dropped (`2.50` -> `2.5`)."""
    return format_quantity(Decimal(str(value)), unit or "", locale)


def _locale_in(ctx: Context) -> str:
    request = ctx.get("request")
    return locale_of(request) if isinstance(request, Request) else DEFAULT_LOCALE


@pass_context
def _money_filter(ctx: Context, value: Any, currency: str | None = None) -> str:
    """`{{ view.total | money }}` (a `Money`) or `{{ 1234 | money("EUR") }}` (minor units)."""
    if currency is None:
        return money(int(value.amount), str(value.currency), _locale_in(ctx))
    return money(int(value), currency, _locale_in(ctx))


@pass_context
def _date_filter(ctx: Context, value: datetime | date | None, zone: str | None = None) -> str:
    return "" if value is None else date_in(value, zone, _locale_in(ctx))


@pass_context
def _datetime_filter(ctx: Context, value: datetime | None, zone: str | None = None) -> str:
    return "" if value is None else datetime_in(value, zone, _locale_in(ctx))


@pass_context
def _quantity_filter(ctx: Context, value: Decimal | str | int, unit: str | None = None) -> str:
    return quantity(value, unit, _locale_in(ctx))


def register(env: Environment) -> None:
    """Add the filters `money`, `date`, `datetime` and `quantity` to `env`."""
    env.filters.update(money=_money_filter, date=_date_filter, datetime=_datetime_filter,
                       quantity=_quantity_filter)
