"""Bucket arithmetic of usage aggregation: which hour bucket and quarter-hour an instant falls
in, and the stored ids of buckets (docs/design.md#usage, docs/usage.md).

Bucket = (tenant_id, meter, service, UTC hour of the event's `time`): a late event lands in
the bucket of its own time. Each bucket also keeps a sub-total per quarter-hour of that
time, so a period boundary at a :15, :30 or :45 offset splits it exactly
(docs/usage.md#quarter-hours). Pure functions, no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime

_QUARTER_MINUTES = 15

#: (tenant_id, meter, service, hour) where hour is the start of the event's UTC hour.
BucketKey = tuple[str, str, str, datetime]


def quarter_of(moment: datetime) -> int:
    """The quarter-hour (0-3) of `moment`'s UTC hour that holds it (by UTC minute, so also
    right for offsets that are not whole quarter-hours)."""
    return moment.astimezone(UTC).minute // _QUARTER_MINUTES


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
