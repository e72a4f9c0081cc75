"""Usage events published by platform services: CloudEvents 1.0, structured JSON mode.

This is the format OpenMeter ingests (https://github.com/cloudevents/spec, v1.0.2). The
de-duplication key is (`source`, `id`).
"""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, Field

from contracts.base import Contract

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


#: Every usage quantity is below this bound (exclusive): 10**12 units of the meter.
MAX_QUANTITY = Decimal(10) ** 12
#: Most digits a usage quantity may have after the decimal point (trailing zeros aside).
QUANTITY_PLACES = 12

#: The quantity of one usage event (docs/usage.md#quantity-range).
UsageQuantity = Annotated[
    Decimal, Field(ge=0, lt=MAX_QUANTITY, decimal_places=QUANTITY_PLACES, allow_inf_nan=False)
]


class UsageData(Contract):
    """The `data` of a usage event.

    `quantity` is a decimal string or number (floats in JSON are read through their decimal
    text), finite, with 0 <= quantity < 10**12 (`MAX_QUANTITY`) and at most 12 digits after
    the decimal point (`QUANTITY_PLACES`; trailing zeros do not count). Anything else is
    refused (the collector dead-letters it: `negative_quantity`, `non_finite_quantity` or
    `quantity_out_of_range`). Why these numbers (docs/usage.md#quantity-range):

    - A valid quantity has at most 12 + 12 = 24 significant digits. Quantities are stored
      and summed as IEEE 754 decimal128 (BSON `Decimal128`, 34 significant digits), so a sum
      of them stays exact while it is below 10**22: the sum of ten billion events of the
      largest quantity in one bucket or one billing period. A sum beyond that is reported
      as an error by the read side, never rounded.
    - Priced amounts are integer minor units in a signed 64-bit integer (BSON int64, at most
      about 9.22 * 10**18). The largest quantity (< 10**12) times any unit price up to
      9.2 * 10**6 minor units (92,000 USD per unit) still fits, so no single event can
      overflow an amount; `1e20`, `1E+6000` or digits beyond the 12th place are refused
      before they reach pricing.
    - A JSON number beyond the range of a double (`1e400`) reads as infinity and is refused
      as not finite.

    `aggregation` is only for custom meters; a standard meter's aggregation is fixed by
    `STANDARD_METERS`.
    """

    meter: str = Field(min_length=1, max_length=128, pattern=r"^[a-z][a-z0-9_.-]*$")
    quantity: UsageQuantity
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
