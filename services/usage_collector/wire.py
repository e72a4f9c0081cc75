"""Fast decoding of usage messages on the collector's hot path, agreeing with the contract.

`Decoder.decode(value)` returns exactly what `acceptance.parse(value)` returns for every input
(the same `Sample`, or `Rejected` with the same reason), at a fraction of the CPU.

How: a slim pydantic schema (`FastEvent`, TypedDicts: no model instances) is a strict subset
of `contracts.usage.UsageRecorded`: the same fields, types and constraints, except that
`quantity` must be a JSON string of plain decimal digits (at most 12 before and 12 after
the point), which the contract reads as the same `Decimal` and which is always within the
contract's quantity range (below 10**12, at most 12 places: docs/usage.md#quantity-range), and
that `time` is validated as the contract's `AwareDatetime` once per
distinct text (`Decoder` caches it). What the slim schema accepts, the contract accepts
with the same values; everything else (numbers as quantities, exponents, any invalid
message) goes through `acceptance.parse`, i.e. through the contract, which decides acceptance
and the dead-letter reason. The event rules after validation (`aggregation_of`,
`require_resource`, `bucket_hour`) are shared with `acceptance.to_sample`. The contract stays
the source of truth; tests/unit/test_usage_wire.py checks the agreement on valid events
and on each invalid class.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal, NotRequired

from pydantic import AwareDatetime, ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from contracts.usage import Aggregation
from services.usage_collector.acceptance import (
    Rejected,
    Sample,
    aggregation_of,
    bucket_hour,
    parse,
    require_resource,
)
from services.usage_collector.buckets import quarter_of

#: Plain decimal text always within the contract's range (< 10**12, <= 12 places).
QUANTITY_TEXT = r"^[0-9]{1,12}(\.[0-9]{1,12})?$"
_TIMES_CACHED = 4096


class FastData(TypedDict):
    """`contracts.usage.UsageData` with `quantity` narrowed to plain decimal text."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    meter: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-z][a-z0-9_.-]*$")]
    quantity: Annotated[str, Field(pattern=QUANTITY_TEXT)]
    service: Annotated[str, Field(min_length=1, max_length=256)]
    resource_id: NotRequired[Annotated[str, Field(max_length=512)] | None]
    aggregation: NotRequired[Aggregation | None]


class FastEvent(TypedDict):
    """`contracts.usage.UsageRecorded` as a TypedDict, with `FastData` as its data."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    specversion: Literal["1.0"]
    id: Annotated[str, Field(min_length=1, max_length=512)]
    source: Annotated[str, Field(min_length=1, max_length=512)]
    type: Literal["billing.usage"]
    subject: Annotated[str, Field(min_length=1, max_length=256)]
    time: str  # validated as `AwareDatetime` by `Decoder`, once per distinct text
    datacontenttype: NotRequired[Literal["application/json"] | None]
    dataschema: NotRequired[str | None]
    data: FastData


_validate = TypeAdapter(FastEvent).validate_json
_validate_time = TypeAdapter(AwareDatetime).validate_python


class Decoder:
    """Decodes usage messages, caching each recently seen `time` text with its parsed
    datetime, UTC hour (None when out of range: `invalid_time`) and quarter-hour.

    The cache holds at most `_TIMES_CACHED` texts and is cleared when full; events usually
    share their times (one per sampling interval), so parsing and hour arithmetic are paid
    once per distinct time rather than per event.
    """

    __slots__ = ("times",)

    def __init__(self) -> None:
        self.times: dict[str, tuple[datetime, datetime | None, int]] = {}

    def _time(self, text: str) -> tuple[datetime, datetime | None, int]:
        moment = _validate_time(text)  # raises ValidationError, as the contract would
        try:
            hour: datetime | None = bucket_hour(moment)
        except Rejected:
            hour = None
        quarter = quarter_of(moment) if hour is not None else 0
        if len(self.times) >= _TIMES_CACHED:
            self.times.clear()
        self.times[text] = (moment, hour, quarter)
        return moment, hour, quarter

    def decode(self, value: bytes | None, published_ms: int = 0) -> Sample:
        """Bytes of one Kafka message -> `Sample`; raises `Rejected` with the dead-letter
        reason, exactly as `acceptance.parse` does. `published_ms` (the Kafka record
        timestamp, ms since the epoch) is carried in the sample for the freshness metric."""
        try:
            event = _validate(value or b"")
            text = event["time"]
            time, hour, quarter = self.times.get(text) or self._time(text)
        except ValidationError:  # the contract decides, with the exact reason
            return parse(value)._replace(published_ms=published_ms)
        data = event["data"]
        meter = data["meter"]
        resource_id = data.get("resource_id")
        aggregation = aggregation_of(meter, data.get("aggregation"))
        if aggregation == "unique_count":
            require_resource(aggregation, meter, resource_id)
        if hour is None:
            hour = bucket_hour(time)  # raises Rejected("invalid_time")
        source = event["source"]
        return Sample(
            f"{source}/{event['id']}",
            (event["subject"], meter, data["service"], hour),
            aggregation,
            Decimal(data["quantity"]),
            time,
            resource_id,
            quarter,
            source,
            published_ms,
        )


def decode(value: bytes | None) -> Sample:
    """One-off `Decoder().decode(value)` (no time cache shared between calls)."""
    return Decoder().decode(value)


__all__ = ["Decoder", "FastEvent", "Rejected", "decode"]
