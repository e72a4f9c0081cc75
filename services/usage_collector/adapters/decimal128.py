"""Fast, exact `Decimal` <-> BSON `Decimal128` conversion for the bucket documents
(`encoded` and `decoded` apply it to every decimal field of a bucket, quarter-hours included).

`bson.Decimal128(value)` and `Decimal128.to_decimal()` convert bit by bit in Python (about
5 us each); bucket writes convert several decimals per bucket each way. These functions give
the same BID encoding and the same `Decimal` (digits, exponent and sign) for every finite
value of at most 34 digits whose exponent is within (-6100, 6100) — all the collector
stores (see `acceptance.to_sample`) — and defer to bson for anything else (NaN, infinities,
non-canonical encodings, extreme exponents). tests/unit/test_usage_decimal128.py checks
them against bson.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from decimal import Context, Decimal
from typing import Any

from bson import Decimal128
from bson.codec_options import CodecOptions

_BIAS = 6176
_LOW_MASK = (1 << 64) - 1
_HIGH_COEFFICIENT = (1 << 49) - 1
_SPECIAL = 0x3 << 61  # combination bits 11: infinity, NaN, or the large-coefficient form
_MAX_COEFFICIENT = 10**34 - 1
_EXACT = Context(prec=34, Emax=6144, Emin=-6143)
_BID = struct.Struct("<QQ")  # (low, high) 64-bit halves, little-endian: Decimal128.bid
_pack, _unpack = _BID.pack, _BID.unpack

_DECIMALS = ("sum", "max", "latest")  # the Decimal128 fields of a bucket and its quarters
#: Codec options for reading buckets with `Decimal128` left as is (converted by `to_decimal`).
RAW_DECIMALS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)


def to_decimal128(value: Decimal) -> Decimal128:
    """`Decimal128(value)`, computed directly for finite values of <= 34 digits."""
    sign, digits, exponent = value.as_tuple()
    if type(exponent) is not int or len(digits) > 34 or not -6100 < exponent < 6100:
        return Decimal128(value)
    coefficient = abs(int(value.scaleb(-exponent, _EXACT)))
    high = (coefficient >> 64) | ((exponent + _BIAS) << 49) | (sign << 63)
    return Decimal128.from_bid(_pack(coefficient & _LOW_MASK, high))


def to_decimal(value: Decimal128) -> Decimal:
    """`value.to_decimal()`, computed directly for canonical finite values."""
    low, high = _unpack(value.bid)
    if high & _SPECIAL == _SPECIAL:
        return value.to_decimal()
    exponent = ((high >> 49) & 0x3FFF) - _BIAS
    coefficient = ((high & _HIGH_COEFFICIENT) << 64) | low
    if coefficient > _MAX_COEFFICIENT or not -6100 < exponent < 6100:
        return value.to_decimal()
    return Decimal(f"{'-' if high >> 63 else ''}{coefficient}E{exponent}")


def encoded(doc: dict[str, Any]) -> dict[str, Any]:
    """A new bucket or a `$set` of one with its Decimal fields as `Decimal128` (the fast
    exact conversion): the hour's, and those of each quarter (`quarters`, `quarters.{m}`)."""
    parts = [doc, *doc.get("quarters", {}).values()]
    parts += [v for k, v in doc.items() if k.startswith("quarters.")]
    for part in parts:
        for name in _DECIMALS:
            if name in part:  # a quarter keeps only what its aggregation reads
                part[name] = to_decimal128(part[name])
    return doc


def decoded(doc: dict[str, Any], quarters: Iterable[str]) -> dict[str, Any]:
    """A bucket read with `RAW_DECIMALS`, with the `Decimal128` fields of the hour and of the
    named quarters as `Decimal` (the others are left as read)."""
    stored = doc.get("quarters") or {}
    for part in (doc, *(stored[q] for q in quarters if q in stored)):
        for name in _DECIMALS:
            if name in part:
                part[name] = to_decimal(part[name])
    return doc
