"""The collector's fast Decimal <-> Decimal128 conversion is bit-exact with bson's."""

import random
from decimal import Decimal

import pytest
from bson import Decimal128

from services.usage_collector.adapters.decimal128 import to_decimal, to_decimal128

pytestmark = pytest.mark.unit

EDGES = [
    "0", "-0", "0.000", "0E+5", "1", "-1", "1.5", "2.500", "0.000001", "123456.789012",
    "9" * 34, "-" + "9" * 34, "1" + "0" * 33, "0." + "9" * 34, "1E+6099", "1E-6099",
    "9" * 34 + "E-6099", "1" * 35, "1E+6100", "1E-6150", "1E+6111", "1E-6176", "NaN", "-NaN",
    "Infinity", "-Infinity", "sNaN",
]


def randoms(n: int) -> list[str]:
    rng = random.Random(42)
    out = []
    for _ in range(n):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 34)))
        out.append(f"{rng.choice(['', '-'])}{digits}E{rng.randint(-6200, 6200)}")
        out.append(f"{rng.randint(0, 10**20)}.{rng.randint(0, 10**12):012d}")
    return out


def assert_same_as_bson(text: str) -> None:
    value = Decimal(text)
    try:
        expected = Decimal128(value)
    except Exception as exc:  # bson refuses it: so must we, the same way
        with pytest.raises(type(exc)):
            to_decimal128(value)
        return
    assert to_decimal128(value).bid == expected.bid
    decoded, reference = to_decimal(expected), expected.to_decimal()
    assert str(decoded) == str(reference)
    if not reference.is_nan():
        assert decoded.as_tuple() == reference.as_tuple()


@pytest.mark.parametrize("text", EDGES)
def test_encoding_gives_the_same_bid_and_decoding_the_same_decimal_as_bson(text: str) -> None:
    assert_same_as_bson(text)


def test_random_decimals_of_every_size_and_exponent_convert_as_bson_does() -> None:
    for text in randoms(2000):
        assert_same_as_bson(text)


def test_non_canonical_and_special_encodings_are_decoded_as_bson_does() -> None:
    for bid in [(0x7800000000000000, 0), (0x7C00000000000000, 0), (0x6000000000000000, 1),
                (0x3040000000000000 | ((1 << 49) - 1), (1 << 64) - 1)]:
        value = Decimal128(bid)
        assert str(to_decimal(value)) == str(value.to_decimal())
