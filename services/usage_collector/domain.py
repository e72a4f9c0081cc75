"""Pure rules of usage aggregation: validation outcomes, hour buckets and merging.

No I/O here. The collector turns each valid `UsageRecorded` into a `Sample`, merges samples
into per-bucket `Delta`s in memory (`BatchMerge`), and the store folds each delta into the
stored bucket with `fold` (../shared/DESIGN.md, Usage events; issue 3).

Bucket = (tenant_id, meter, service, UTC hour of the event's `time`): a late event lands in
the bucket of its own time. Quantities are `Decimal`, added in a 34-digit context (the
precision of the `Decimal128` they are stored as), never floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any, NamedTuple

from pydantic import ValidationError

from contracts.usage import STANDARD_METERS, UsageRecorded

#: Arithmetic context for stored quantities: Decimal128 holds 34 significant digits.
DECIMAL128 = Context(prec=34, Emax=6144, Emin=-6143)
_MAX_DIGITS = 34
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: (tenant_id, meter, service, hour) where hour is the start of the event's UTC hour.
BucketKey = tuple[str, str, str, datetime]


class Rejected(Exception):
    """A usage event that must be dead-lettered; `reason` is a short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Sample(NamedTuple):
    """One valid usage event reduced to what aggregation needs."""

    event_id: str
    key: BucketKey
    aggregation: str
    quantity: Decimal
    time: datetime
    resource_id: str | None


def hour_of(moment: datetime) -> datetime:
    """The start of `moment`'s UTC hour (the bucket of an event), timezone-aware UTC."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def bucket_id(key: BucketKey) -> str:
    """The stored `_id` of a bucket: "{tenant}|{meter}|{service}|{hour:%Y-%m-%dT%H}"."""
    tenant, meter, service, hour = key
    return f"{tenant}|{meter}|{service}|{hour:%Y-%m-%dT%H}"


def unique_id(key: BucketKey, resource_id: str) -> str:
    """The `_id` of a distinct-resource record of a `unique_count` bucket."""
    return f"{bucket_id(key)}|{resource_id}"


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
    key = (event.subject, data.meter, data.service, bucket_hour(event.time))
    return Sample(event.event_id, key, aggregation, quantity, event.time, data.resource_id)


def parse(value: bytes | None) -> Sample:
    """Bytes of one Kafka message -> `Sample`; raises `Rejected` with the dead-letter reason."""
    if not value:
        raise Rejected("invalid_json", "empty message")
    try:
        event = UsageRecorded.model_validate_json(value)
    except ValidationError as exc:
        raise Rejected(*classify(exc)) from exc
    return to_sample(event)


def _newer(time_a: datetime, qty_a: Decimal, time_b: datetime, qty_b: Decimal) -> bool:
    """True when sample a replaces b as `latest`: later time wins; on a tie the larger
    quantity, so the result does not depend on arrival order."""
    return time_a > time_b or (time_a == time_b and qty_a > qty_b)


@dataclass(slots=True)
class Delta:
    """What a set of samples adds to one bucket."""

    aggregation: str
    sum: Decimal
    count: int
    max: Decimal
    latest: Decimal
    latest_time: datetime
    resources: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, s: Sample) -> Delta:
        """The delta of a single sample."""
        resources = {s.resource_id} if s.aggregation == "unique_count" and s.resource_id else set()
        return cls(s.aggregation, s.quantity, 1, s.quantity, s.quantity, s.time, resources)

    def add(self, s: Sample) -> None:
        """Merge one more sample into this delta."""
        q = s.quantity
        self.sum = DECIMAL128.add(self.sum, q)
        self.count += 1
        if q > self.max:
            self.max = q
        t = s.time
        if t > self.latest_time or (t == self.latest_time and q > self.latest):  # _newer
            self.latest, self.latest_time = q, t
        if s.resource_id is not None and self.aggregation == "unique_count":
            self.resources.add(s.resource_id)


class BatchMerge:
    """Samples of one batch merged per bucket, with duplicates inside the batch counted once.

    `samples` keeps the distinct samples so the batch can be re-merged without the ones the
    database already recorded (`without`).
    """

    __slots__ = ("buckets", "samples", "seen", "duplicates")

    def __init__(self) -> None:
        self.buckets: dict[BucketKey, Delta] = {}
        self.samples: list[Sample] = []
        self.seen: set[str] = set()
        self.duplicates = 0

    def add(self, s: Sample) -> bool:
        """Merge `s`; False (and counted as a duplicate) when its event id is already in."""
        if s.event_id in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(s.event_id)
        self.samples.append(s)
        delta = self.buckets.get(s.key)
        if delta is None:
            self.buckets[s.key] = Delta.of(s)
        elif delta.aggregation == s.aggregation:
            delta.add(s)
        else:
            # A custom meter whose events disagree on the aggregation: the first one wins,
            # the data (sum, count, max, latest) of every event is still kept.
            delta.add(s._replace(aggregation=delta.aggregation))
        return True

    def without(self, done: set[str]) -> BatchMerge:
        """A new merge of this batch's samples except the event ids in `done`."""
        rest = BatchMerge()
        for s in self.samples:
            if s.event_id not in done:
                rest.add(s)
        return rest

    def __len__(self) -> int:
        return len(self.samples)


def new_bucket(key: BucketKey, delta: Delta, now: datetime) -> dict[str, Any]:
    """The stored document of a bucket created by `delta` (schema: query.py)."""
    tenant, meter, service, hour = key
    return {
        "_id": bucket_id(key), "tenant_id": tenant, "meter": meter, "service": service,
        "hour": hour, "aggregation": delta.aggregation, "sum": delta.sum,
        "count": delta.count, "max": delta.max, "latest": delta.latest,
        "latest_time": delta.latest_time, "updated_at": now,
    }


def fold(stored: dict[str, Any], delta: Delta, now: datetime) -> dict[str, Any]:
    """The fields to `$set` on a stored bucket after adding `delta` (the bucket keeps its
    aggregation). `stored` holds Decimal sum/max/latest, int count, datetime latest_time."""
    latest, latest_time = stored["latest"], stored.get("latest_time") or _EPOCH
    if _newer(delta.latest_time, delta.latest, latest_time, latest):
        latest, latest_time = delta.latest, delta.latest_time
    return {
        "sum": DECIMAL128.add(stored["sum"], delta.sum),
        "count": int(stored["count"]) + delta.count,
        "max": max(stored["max"], delta.max),
        "latest": latest,
        "latest_time": latest_time,
        "updated_at": now,
    }
