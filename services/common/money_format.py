"""Money, prices and quantities as documents and emails show them (babel, CLDR data, locale
`en_US` unless told): amounts `$123.45`, `KES 14,961.09`; unit prices exact `$0.005`;
quantities in full `1,043.384722 vCPU-hours`."""

import re
from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import format_currency, format_decimal

from contracts.money import minor_unit_exponent, to_major_units

DEFAULT_LOCALE = "en_US"
_SYMBOL_BEFORE_DIGIT = re.compile(r"(?<=[A-Za-z])(?=[\d-])")


def format_price(major: Decimal, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """An exact amount in major units formatted like money, never rounded: at least the
    currency's usual digits, more when it has them (`$0.04`, `$0.005`, `$5.00`, `¥1,500`).

    Babel does not apply CLDR's `currencySpacing` rule (a space between an alphabetic symbol
    such as `KES` and the digits); it is applied here, with a plain space.
    Raises `ValueError` for an unknown currency.
    """
    text = format_currency(major, currency, locale=locale, decimal_quantization=False)
    return _SYMBOL_BEFORE_DIGIT.sub(" ", text, count=1)


def format_money(minor: int, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """Format `minor` units of `currency` for `locale`: `$123.45`, `€112.68`, `KES 14,961.09`,
    `¥1,500`, `-$5.00`. Exact: never rounded to CLDR's display digits (IQD, LAK, RSD have
    fewer than ISO 4217). Raises `ValueError` for an unknown currency."""
    return format_price(to_major_units(minor, currency), currency, locale)


def format_quantity(quantity: Decimal, unit: str = "", locale: str = DEFAULT_LOCALE) -> str:
    """Every digit of `quantity`, grouped, without trailing zeros, then `unit` if any:
    `1,043.384722 vCPU-hours`, `500 GB`, `0`."""
    value = quantity.normalize() if quantity else Decimal(0)
    if value == value.to_integral_value():
        value = value.quantize(Decimal(1))
    text = format_decimal(value, locale=locale, decimal_quantization=False)
    return f"{text} {unit}" if unit else text


def format_rounded(major: Decimal, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """An exact amount in major units rounded half-up to the currency's minor unit, then
    formatted like money (`4.93824` USD -> `$4.94`): for parts of a line whose own amount is
    their exact sum rounded once."""
    quantum = Decimal(1).scaleb(-minor_unit_exponent(currency))
    return format_price(major.quantize(quantum, rounding=ROUND_HALF_UP), currency, locale)
