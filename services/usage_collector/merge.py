"""Pure merging of usage samples: per quarter-hour, per hour bucket, per batch; and folding a
batch's delta into a stored bucket document.

No I/O here. `BatchMerge` collects the `Sample`s of one batch into an `HourDelta` per bucket
(one `Delta` per quarter-hour that has events); the store writes each with `new_bucket` or
folds it into the stored document with `fold`. Sums are exact (`totals.exact_add`): a
bucket sum that would need more than 34 significant digits rejects the event that caused it
(`quantity_out_of_range`) instead of rounding (docs/usage.md#exact-sums).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.usage_collector.acceptance import Rejected, Sample
from services.usage_collector.buckets import BucketKey, bucket_id
from services.usage_collector.totals import (
    PART_FIELDS,
    QUARTER_FIELDS,
    UsageSumOverflow,
    exact_add,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_QUARTER = timedelta(minutes=15)


def _newer(time_a: datetime, qty_a: Decimal, time_b: datetime, qty_b: Decimal) -> bool:
    """True when sample a replaces b as `latest`: later time wins; on a tie the larger
    quantity, so the result does not depend on arrival order."""
    return time_a > time_b or (time_a == time_b and qty_a > qty_b)


@dataclass(slots=True)
class Delta:
    """What a set of samples adds to one bucket, or to one quarter-hour of it."""

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
        """Merge one more sample; raises `UsageSumOverflow` (changing nothing) when the sum
        would need more than 34 significant digits."""
        q = s.quantity
        self.sum = exact_add(self.sum, q)
        self.count += 1
        if q > self.max:
            self.max = q
        t = s.time
        if t > self.latest_time or (t == self.latest_time and q > self.latest):  # _newer
            self.latest, self.latest_time = q, t
        if s.resource_id is not None and self.aggregation == "unique_count":
            self.resources.add(s.resource_id)

    def merged(self, other: Delta) -> Delta:
        """A new delta of both (this one's aggregation); raises `UsageSumOverflow`."""
        newer = _newer(other.latest_time, other.latest, self.latest_time, self.latest)
        return Delta(
            self.aggregation, exact_add(self.sum, other.sum), self.count + other.count,
            max(self.max, other.max), other.latest if newer else self.latest,
            other.latest_time if newer else self.latest_time, self.resources | other.resources,
        )


@dataclass(slots=True)
class HourDelta:
    """What a set of samples adds to one hour bucket: a `Delta` per quarter-hour (0-3) and
    the hour's running `sum` (a quarter's sum never exceeds it, so checking it suffices)."""

    aggregation: str
    parts: dict[int, Delta]
    sum: Decimal

    @classmethod
    def of(cls, s: Sample) -> HourDelta:
        """The delta of a single sample."""
        return cls(s.aggregation, {s.quarter: Delta.of(s)}, s.quantity)

    def add(self, s: Sample) -> None:
        """Merge one more sample (with this bucket's aggregation: for a custom meter whose
        events disagree, the first one wins and every event's data is still kept).

        Raises `UsageSumOverflow`, changing nothing, when the hour's sum would need more
        than 34 significant digits."""
        total = exact_add(self.sum, s.quantity)
        if s.aggregation != self.aggregation:
            s = s._replace(aggregation=self.aggregation)
        part = self.parts.get(s.quarter)
        if part is None:
            self.parts[s.quarter] = Delta.of(s)
        else:
            part.add(s)
        self.sum = total

    def total(self) -> Delta:
        """The whole hour's delta; raises `UsageSumOverflow`."""
        quarters = [self.parts[q] for q in sorted(self.parts)]
        total = quarters[0]
        for part in quarters[1:]:
            total = total.merged(part)
        return total

    def resources(self, hour: datetime) -> dict[str, list[datetime]]:
        """Each distinct resource with the starts of the quarter-hours it was seen in."""
        seen: dict[str, list[datetime]] = {}
        for q in sorted(self.parts):
            for rid in self.parts[q].resources:
                seen.setdefault(rid, []).append(hour + q * _QUARTER)
        return seen


class BatchMerge:
    """Samples of one batch merged per bucket, with duplicates inside the batch counted once.

    `samples` keeps the distinct samples so the batch can be re-merged without the ones the
    database already recorded (`without`).
    """

    __slots__ = ("buckets", "samples", "seen", "duplicates")

    def __init__(self) -> None:
        self.buckets: dict[BucketKey, HourDelta] = {}
        self.samples: list[Sample] = []
        self.seen: set[str] = set()
        self.duplicates = 0

    def add(self, s: Sample) -> bool:
        """Merge `s`; False (and counted as a duplicate) when its event id is already in.

        Raises `Rejected` (`quantity_out_of_range`), merging nothing, when the bucket's sum
        would need more than 34 significant digits.
        """
        if s.event_id in self.seen:
            self.duplicates += 1
            return False
        hour = self.buckets.get(s.key)
        if hour is None:
            self.buckets[s.key] = HourDelta.of(s)
        else:
            try:
                hour.add(s)
            except UsageSumOverflow as exc:
                raise Rejected("quantity_out_of_range", str(exc)) from exc
        self.seen.add(s.event_id)
        self.samples.append(s)
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


def _fields(delta: Delta, names: tuple[str, ...] = PART_FIELDS) -> dict[str, Any]:
    """The stored sub-total of `delta`: the fields in `names`."""
    values = {"sum": delta.sum, "count": delta.count, "max": delta.max,
              "latest": delta.latest, "latest_time": delta.latest_time}
    return {name: values[name] for name in names}


def _folded(
    stored: dict[str, Any], delta: Delta, names: tuple[str, ...] = PART_FIELDS
) -> dict[str, Any]:
    """`stored` sub-total (Decimal sum/max/latest) plus `delta`, the fields in `names`;
    raises `UsageSumOverflow`."""
    out: dict[str, Any] = {"count": int(stored["count"]) + delta.count}
    if "sum" in names:
        out["sum"] = exact_add(stored["sum"], delta.sum)
    if "max" in names:
        out["max"] = max(stored["max"], delta.max)
    if "latest" in names:
        latest, latest_time = stored["latest"], stored.get("latest_time") or _EPOCH
        if _newer(delta.latest_time, delta.latest, latest_time, latest):
            latest, latest_time = delta.latest, delta.latest_time
        out["latest"], out["latest_time"] = latest, latest_time
    return out


def new_bucket(key: BucketKey, delta: HourDelta, now: datetime) -> dict[str, Any]:
    """The stored document of a bucket created by `delta` (schema: query.py)."""
    tenant, meter, service, hour = key
    names = QUARTER_FIELDS[delta.aggregation]
    return {
        "_id": bucket_id(key), "tenant_id": tenant, "meter": meter, "service": service,
        "hour": hour, "aggregation": delta.aggregation, **_fields(delta.total()),
        "quarters": {str(15 * q): _fields(delta.parts[q], names) for q in sorted(delta.parts)},
        "updated_at": now,
    }


def fold(stored: dict[str, Any], delta: HourDelta, now: datetime) -> dict[str, Any]:
    """The fields to `$set` on a stored bucket after adding `delta` (the bucket keeps its
    aggregation): the hour's fields, and `quarters.{minute}` for each quarter-hour `delta`
    touches. `stored` holds Decimal sum/max/latest, int count, datetime latest_time, at the
    top and in those quarters (others are not read). A bucket stored without quarters keeps
    its earlier events in quarter "0" (where the read side already counted them). Raises
    `UsageSumOverflow`."""
    aggregation = stored["aggregation"]
    names = QUARTER_FIELDS.get(aggregation, PART_FIELDS)
    quarters = stored.get("quarters")
    change = {**_folded(stored, delta.total()), "updated_at": now}
    if quarters is None:
        quarters = {"0": {name: stored.get(name) for name in names}}
        change["quarters.0"] = quarters["0"]  # the earlier events, where they were counted
    for q in sorted(delta.parts):
        part, name = delta.parts[q], str(15 * q)
        old = quarters.get(name)
        change[f"quarters.{name}"] = (
            _fields(part, names) if old is None else _folded(old, part, names)
        )
    return change


def rewritten(stored: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """The whole bucket document after `$set` of `change` (from `fold`) on `stored`: its
    top-level fields replaced, each `quarters.{minute}` put into `quarters`; `stored` and
    its quarters are not modified. The store writes buckets whole: the embedded development
    server diffs a `$set` against the stored document (docs/usage.md#batch-write-costs)."""
    doc = dict(stored)
    quarters = dict(stored.get("quarters") or {})
    for name, value in change.items():
        if name.startswith("quarters."):
            quarters[name[len("quarters."):]] = value
        else:
            doc[name] = value
    doc["quarters"] = quarters
    return doc
