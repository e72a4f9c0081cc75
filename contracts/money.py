"""Money and quantity types: integer minor units plus an ISO 4217 code, `Decimal` quantities.

Currency codes and their minor-unit exponents come from babel's CLDR data (the maintained
source), never from a hand-written table.
"""

from decimal import Decimal
from functools import lru_cache
from typing import Annotated

from babel.numbers import get_currency_precision, list_currencies
from pydantic import AfterValidator, Field, Strict

#: An amount of money in the currency's minor units (cents for USD). Floats are refused.
MinorUnits = Annotated[int, Strict(), Field(ge=0)]
#: A signed amount in minor units (coupon and credit lines are negative).
SignedMinorUnits = Annotated[int, Strict()]
#: A non-negative, finite decimal quantity (vCPU-hours, GB, ...). JSON carries it as a string.
Quantity = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
#: A non-negative, finite decimal price per unit, in major units of the currency (0.005 USD).
UnitPrice = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


@lru_cache(maxsize=1)
def iso_currencies() -> frozenset[str]:
    """Every ISO 4217 code babel knows (upper case)."""
    return frozenset(code.upper() for code in list_currencies())


def check_currency(code: str) -> str:
    """Return `code` if it is an ISO 4217 currency known to babel; raise `ValueError` otherwise."""
    if code not in iso_currencies():
        raise ValueError(f"unknown ISO 4217 currency {code!r}")
    return code


def minor_unit_exponent(currency: str) -> int:
    """Digits after the decimal point of `currency`'s minor unit (USD 2, JPY 0, KWD 3), per CLDR."""
    return int(get_currency_precision(check_currency(currency)))


def to_minor_units(major: Decimal | str, currency: str) -> int:
    """Convert an exact major-unit amount ("49.00" USD) to minor units (4900).

    Raises `ValueError` when the amount has more digits than the currency's minor unit allows
    or is not finite; nothing is rounded here.
    """
    value = Decimal(str(major))
    if not value.is_finite():
        raise ValueError(f"amount {major!r} is not finite")
    scaled = value.scaleb(minor_unit_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{major} {currency} has more digits than the currency's minor unit")
    return int(scaled)


def to_major_units(minor: int, currency: str) -> Decimal:
    """Minor units -> exact `Decimal` in major units (4900 USD -> Decimal("49.00"))."""
    exponent = minor_unit_exponent(currency)
    return Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))


CurrencyCode = Annotated[str, Field(min_length=3, max_length=3), AfterValidator(check_currency)]
