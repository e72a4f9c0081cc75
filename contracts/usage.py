"""Usage events published by platform services: CloudEvents 1.0, structured JSON mode.

This is the format OpenMeter ingests (https://github.com/cloudevents/spec, v1.0.2). The
de-duplication key is (`source`, `id`).
"""

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from contracts.base import Contract
from contracts.money import Quantity

#: Aggregations a meter may use over a billing period.
Aggregation = Literal["sum", "count", "max", "latest", "unique_count", "avg"]

#: The meters every tenant sees and how each aggregates (../shared/DESIGN.md, Usage events).
STANDARD_METERS: dict[str, Aggregation] = {
    "cpu_hours": "sum",
    "memory_gb_hours": "sum",
    "storage_gb": "avg",
    "bandwidth_gb": "sum",
    "computations": "count",
}


class UsageData(Contract):
    """The `data` of a usage event.

    `quantity` is a decimal string or number >= 0 (floats in JSON are read through their
    decimal text). `aggregation` is only for custom meters; a standard meter's aggregation is
    fixed by `STANDARD_METERS`.
    """

    meter: str = Field(min_length=1, max_length=128, pattern=r"^[a-z][a-z0-9_.-]*$")
    quantity: Quantity
    service: str = Field(min_length=1, max_length=256)
    resource_id: str | None = Field(default=None, max_length=512)
    aggregation: Aggregation | None = None


class UsageRecorded(Contract):
    """One usage event (CloudEvents 1.0 structured mode), key = tenant id (`subject`).

    `event_id` is `"{source}/{id}"`, `occurred_at` is `time` and `schema_version` is 1, so the
    envelope carries the same three facts as every other event without extra fields on the wire.
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=512)
    source: str = Field(min_length=1, max_length=512)
    type: Literal["billing.usage"]
    subject: str = Field(min_length=1, max_length=256)
    time: AwareDatetime
    datacontenttype: Literal["application/json"] | None = None
    dataschema: str | None = None
    data: UsageData

    @property
    def event_id(self) -> str:
        """The de-duplication key: `source` and `id` joined by `/`."""
        return f"{self.source}/{self.id}"

    @property
    def occurred_at(self) -> datetime:
        """When the usage happened (the CloudEvents `time`)."""
        return self.time

    @property
    def schema_version(self) -> int:
        """Version of this contract (1)."""
        return self.SCHEMA_VERSION

    @property
    def tenant_id(self) -> str:
        """The tenant the usage belongs to (the CloudEvents `subject`)."""
        return self.subject
