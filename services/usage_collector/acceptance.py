"""Acceptance of usage events: which consumed messages the collector aggregates, reduced to a
`Sample`, and which it dead-letters with what reason (docs/usage.md, docs/design.md#usage).

No I/O here. The collector turns each valid `UsageRecorded` into a `Sample`; `merge.py`
merges samples per bucket (`buckets.py`) in memory and folds them into stored buckets.
Quantities are `Decimal`, added exactly in a 34-digit context (the precision of the
`Decimal128` they are stored as; `totals.exact_add`), never floats.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from pydantic import ValidationError

from contracts.usage import STANDARD_METERS, UsageRecorded
from services.usage_collector.buckets import BucketKey, hour_of, quarter_of

_MAX_DIGITS = 34  # significant digits of a Decimal128


class Rejected(Exception):
    """A usage event that must be dead-lettered; `reason` is a short code. `errors` lists the
    contract's validation errors as (location, message), when the contract refused it."""

    def __init__(self, reason: str, detail: str = "",
                 errors: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.errors = errors


class Sample(NamedTuple):
    """One valid usage event reduced to what aggregation needs."""

    event_id: str
    key: BucketKey
    aggregation: str
    quantity: Decimal
    time: datetime
    resource_id: str | None
    quarter: int  # the quarter-hour of `time` within the bucket's UTC hour: 0, 1, 2 or 3
    source: str  # the event's `source` (`event_id` is "{source}/{id}")
    #: When the message was published (Kafka record timestamp, ms since the epoch); <= 0: unknown.
    published_ms: int = 0


def _reason(loc: tuple[Any, ...], kind: str) -> str:
    if loc == ("subject",):
        return "missing_subject"
    if loc == ("data", "quantity") and kind == "greater_than_equal":
        return "negative_quantity"
    if loc == ("data", "quantity") and kind == "finite_number":
        return "non_finite_quantity"
    if loc == ("data", "quantity") and kind in ("less_than", "decimal_max_places"):
        return "quantity_out_of_range"
    if loc == ("data", "aggregation"):
        return "unknown_aggregation"
    return "validation_error"


def classify(exc: ValidationError) -> tuple[str, str]:
    """Map a contract validation error to a dead-letter (reason, detail).

    Reasons: invalid_json, missing_subject, negative_quantity, non_finite_quantity,
    quantity_out_of_range (outside `contracts.usage.UsageQuantity`), unknown_aggregation when
    every error is of that one kind; validation_error otherwise.
    """
    errors = exc.errors(include_url=False)
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)[:500]
    if any(e["type"] == "json_invalid" for e in errors):
        return "invalid_json", detail
    reasons = {_reason(tuple(e["loc"]), e["type"]) for e in errors}
    return (reasons.pop() if len(reasons) == 1 else "validation_error"), detail


def aggregation_of(meter: str, aggregation: str | None) -> str:
    """The aggregation of an event's meter: fixed for a standard meter, given for a custom one.

    Raises `Rejected` with reason `unknown_aggregation` (custom meter without aggregation) or
    `aggregation_mismatch` (a standard meter sent with another aggregation).
    """
    standard = STANDARD_METERS.get(meter)
    if standard is None:
        if aggregation is None:
            raise Rejected("unknown_aggregation", f"custom meter {meter!r} has none")
        return aggregation
    if aggregation is not None and aggregation != standard:
        raise Rejected(
            "aggregation_mismatch", f"{meter} aggregates by {standard}, not {aggregation}"
        )
    return standard


def require_resource(aggregation: str, meter: str, resource_id: str | None) -> None:
    """Raise `Rejected` (`missing_resource_id`) for a unique_count event without resource_id."""
    if aggregation == "unique_count" and not resource_id:
        raise Rejected("missing_resource_id", f"unique_count meter {meter!r}")


def bucket_hour(moment: datetime) -> datetime:
    """`hour_of(moment)`; raises `Rejected` (`invalid_time`) when the UTC hour is out of range."""
    try:
        return hour_of(moment)
    except (OverflowError, ValueError) as exc:
        raise Rejected("invalid_time", str(exc)) from exc


def to_sample(event: UsageRecorded) -> Sample:
    """Reduce a valid event to a `Sample`.

    Raises `Rejected`, checked in this order: the reasons of `aggregation_of`,
    `quantity_out_of_range` (the contract already bounds the value; this refuses a text
    with more than 34 digits, trailing zeros included, or an exponent outside Decimal128's
    range, e.g. `0E+7000`), `missing_resource_id` (`require_resource`), `invalid_time`.
    """
    data = event.data
    aggregation = aggregation_of(data.meter, data.aggregation)
    quantity = data.quantity
    sign, digits, exponent = quantity.as_tuple()
    if len(digits) > _MAX_DIGITS or not -6100 < int(exponent) < 6100:
        raise Rejected("quantity_out_of_range", str(quantity)[:100])
    require_resource(aggregation, data.meter, data.resource_id)
    hour = bucket_hour(event.time)
    key = (event.subject, data.meter, data.service, hour)
    return Sample(event.event_id, key, aggregation, quantity, event.time, data.resource_id,
                  quarter_of(event.time), event.source)


def parse(value: bytes | None) -> Sample:
    """Bytes of one Kafka message -> `Sample`; raises `Rejected` with the dead-letter reason."""
    if not value:
        raise Rejected("invalid_json", "empty message")
    try:
        event = UsageRecorded.model_validate_json(value)
    except ValidationError as exc:
        raise Rejected(*classify(exc)) from exc
    return to_sample(event)


def check(value: bytes) -> UsageRecorded:
    """Validate one usage event (its JSON bytes) exactly as the collector accepts it from the
    topic: the contract, then the rules of `to_sample`. Returns the validated event for
    publishers that accept events on the collector's behalf (the API's `POST /v1/usage`).
    Raises `Rejected` with the reason the collector would dead-letter it with; for a contract
    violation `errors` lists every error as (dotted location, message)."""
    try:
        event = UsageRecorded.model_validate_json(value)
    except ValidationError as exc:
        errors = tuple((".".join(map(str, e["loc"])), e["msg"])
                       for e in exc.errors(include_url=False))
        raise Rejected(*classify(exc), errors=errors) from exc
    to_sample(event)
    return event
