"""Money and quantity types: integer minor units plus an ISO 4217 code, `Decimal` quantities.

Currency codes and their minor-unit exponents come from the ISO 4217 list itself (the
`iso4217` package, which ships the maintenance agency's current table), never from a
hand-written table and never from CLDR: CLDR's digits are for display and differ from ISO 4217
for some currencies (IQD 3, LAK 2, RSD 2 in ISO 4217, 0 in CLDR); Stripe amounts follow the
ISO 4217 minor unit. babel is used for display formatting only. See docs/configuration.md,
"Currencies and minor units".
"""

from decimal import Decimal
from functools import lru_cache
from typing import Annotated

from iso4217 import Currency
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
def _exponents() -> dict[str, int]:
    """ISO 4217 code -> minor-unit exponent, for every current code that has a minor unit
    (codes whose minor unit is "N.A.", such as XAU or XDR, are left out: they are not money
    an invoice can be in)."""
    return {c.code: int(c.exponent) for c in Currency if c.exponent is not None}


def iso_currencies() -> frozenset[str]:
    """Every current ISO 4217 code that has a minor unit (upper case)."""
    return frozenset(_exponents())


def check_currency(code: str) -> str:
    """Return `code` if it is a current ISO 4217 currency with a minor unit; raise `ValueError`
    otherwise."""
    if code not in _exponents():
        raise ValueError(f"unknown ISO 4217 currency {code!r} (or one without a minor unit)")
    return code


def minor_unit_exponent(currency: str) -> int:
    """Digits after the decimal point of `currency`'s minor unit per ISO 4217 (USD 2, JPY 0,
    BHD 3, IQD 3, LAK 2, RSD 2). Raises `ValueError` for an unknown code."""
    return _exponents()[check_currency(currency)]


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
