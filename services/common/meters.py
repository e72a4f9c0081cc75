"""The meters people read about: each standard meter key's display name and unit, the one
table the invoice document, the API's usage views and the portal share (docs/design.md,
"Usage").

    meter_of("cpu_hours")   -> Meter(key="cpu_hours", name="CPU", unit="vCPU-hours")
    meter_of("gpu_minutes") -> Meter(key="gpu_minutes", name="gpu_minutes", unit="units")

A meter outside the table (tenants may meter anything) keeps its key as its name and is counted
in `units`.
"""

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Meter:
    """A meter's key (as in usage events and price plans), the name shown to people and the
    unit its quantities are measured in."""

    key: str
    name: str
    unit: str


#: The standard meters (aggregations in `contracts.usage`): CPU time in vCPU-hours, memory in
#: GB-hours, storage as the period's average GB, bandwidth in GB, computations counted.
METERS: Final[dict[str, Meter]] = {m.key: m for m in (
    Meter("cpu_hours", "CPU", "vCPU-hours"),
    Meter("memory_gb_hours", "Memory", "GB-hours"),
    Meter("storage_gb", "Storage", "GB"),
    Meter("bandwidth_gb", "Bandwidth", "GB"),
    Meter("computations", "Computations", "computations"),
)}

#: The unit of a meter outside `METERS`.
DEFAULT_UNIT: Final = "units"


def meter_of(key: str) -> Meter:
    """The meter `key` from `METERS`, else one named by its key and counted in `units`."""
    return METERS.get(key) or Meter(key, key, DEFAULT_UNIT)
