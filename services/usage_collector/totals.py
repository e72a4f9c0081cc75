"""Exact arithmetic on usage quantities, and what part of a bucket an interval covers.

Pure (no I/O). Quantities are added in a 34-significant-digit context, the precision of the
IEEE 754-2008 decimal128 they are stored as (BSON `Decimal128`), with the `Inexact` signal
trapped: a sum that would need more digits raises `UsageSumOverflow` instead of being rounded
(docs/usage.md#exact-sums). Never Python's default 28-digit context.

A stored bucket covers one UTC hour and keeps a sub-total per quarter-hour that has events
(docs/usage.md#quarter-hours); `parts_in` picks the sub-totals an interval covers and
`combine` aggregates them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, Inexact, InvalidOperation
from typing import Any

from services.common.errors import BillingError

#: Adds exactly or raises: 34 digits (decimal128), `Inexact` (so also `Overflow`) trapped.
EXACT = Context(prec=34, Emax=6144, Emin=-6143, rounding=ROUND_HALF_EVEN,
                traps=[Inexact, InvalidOperation, DivisionByZero])
#: Divides for `avg`: the only aggregation that rounds (half-even, to 34 digits).
AVERAGE = Context(prec=34, Emax=6144, Emin=-6143, rounding=ROUND_HALF_EVEN,
                  traps=[InvalidOperation, DivisionByZero])
HOUR = timedelta(hours=1)
QUARTER = timedelta(minutes=15)
#: The fields of a bucket (and of each of its quarter-hours) that aggregations read.
PART_FIELDS = ("sum", "count", "max", "latest", "latest_time")


class UsageSumOverflow(BillingError, ArithmeticError):
    """A sum of usage quantities needs more than 34 significant digits, so Decimal128 cannot
    hold it exactly. Raised instead of rounding; `operands` are the two values being added.

    With quantities bounded as the contract says (below 10**12, at most 12 places), a sum
    reaches this only beyond 10**22 units (docs/usage.md#exact-sums).
    """

    def __init__(self, a: Decimal, b: Decimal) -> None:
        super().__init__(f"usage sum {a} + {b} needs more than 34 significant digits")
        self.operands = (a, b)


def exact_add(a: Decimal, b: Decimal) -> Decimal:
    """`a + b` with 34 significant digits; raises `UsageSumOverflow` rather than round."""
    try:
        return EXACT.add(a, b)
    except Inexact as exc:
        raise UsageSumOverflow(a, b) from exc


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """The exact sum of `values` (0 when empty); raises `UsageSumOverflow` like `exact_add`."""
    total = Decimal(0)
    for value in values:
        total = exact_add(total, value)
    return total


@dataclass(frozen=True, slots=True)
class Part:
    """The stored sub-total of a bucket or of one of its quarter-hours."""

    start: datetime
    sum: Decimal
    count: int
    max: Decimal
    latest: Decimal
    latest_time: datetime


def _part(start: datetime, fields: dict[str, Any]) -> Part:
    return Part(start, Decimal(fields["sum"]), int(fields["count"]), Decimal(fields["max"]),
                Decimal(fields["latest"]), fields.get("latest_time") or start)


def parts_in(doc: dict[str, Any], start: datetime, end: datetime) -> list[Part]:
    """The sub-totals of a stored bucket that [start, end) covers.

    A quarter-hour belongs to the interval that contains its start, so the result is exact
    for boundaries on a quarter-hour (any whole-hour, :15, :30 or :45 offset from UTC) and a
    boundary inside a quarter-hour counts that whole quarter-hour in the interval that
    contains the quarter's start. A bucket written without quarter sub-totals counts whole
    at its hour's start. Decimal fields must be `Decimal` (the project's codec options).
    """
    hour: datetime = doc["hour"]
    if start <= hour and hour + HOUR <= end:
        return [_part(hour, doc)]
    quarters: dict[str, dict[str, Any]] | None = doc.get("quarters")
    if not quarters:
        return [_part(hour, doc)] if start <= hour < end else []
    picked = []
    for minute, fields in sorted(quarters.items(), key=lambda item: int(item[0])):
        at = hour + timedelta(minutes=int(minute))
        if start <= at < end:
            picked.append(_part(at, fields))
    return picked


def combine(aggregation: str, parts: list[Part], distinct: int) -> Decimal:
    """The quantity of one meter over `parts` (non-empty) per its `aggregation`.

    `sum`: exact sum; `count`: number of events; `max`: largest quantity; `latest`: the
    quantity of the latest event (on equal times the larger quantity); `avg`: exact sum
    divided by the event count, rounded half-even to 34 digits; `unique_count`: `distinct`.
    Raises `UsageSumOverflow` (sum, avg) and `ValueError` for an unknown aggregation.
    """
    if aggregation == "sum":
        return exact_sum(p.sum for p in parts)
    if aggregation == "count":
        return Decimal(sum(p.count for p in parts))
    if aggregation == "max":
        return max(p.max for p in parts)
    if aggregation == "latest":
        return max(parts, key=lambda p: (p.latest_time, p.latest)).latest
    if aggregation == "avg":
        count = sum(p.count for p in parts)
        total = exact_sum(p.sum for p in parts)
        return AVERAGE.divide(total, Decimal(count)) if count else Decimal(0)
    if aggregation == "unique_count":
        return Decimal(distinct)
    raise ValueError(f"unknown aggregation {aggregation!r}")
