"""Pure conversion of a Bitbrains-format VM trace into usage events (docs/design.md#usage).

The trace (the GWA-T-12 Bitbrains "Rnd" trace of the TU Delft Grid Workloads Archive) is a
directory `<dir>/<month>/<vm>.csv`: one file per VM and month, named by the VM's id. Each file
has one header row, then one row per sample; a row's fields are separated by `;` followed by a
tab (the tab is whitespace around each number and is ignored). The eleven columns, in order:

| # | header | used as |
|---|---|---|
| 0 | `Timestamp [ms]` | the sample's end, in Unix **seconds** despite the header; must be whole |
| 1 | `CPU cores` | cores of the VM |
| 2 | `CPU capacity provisioned [MHZ]` | not used |
| 3 | `CPU usage [MHZ]` | not used |
| 4 | `CPU usage [%]` | share of those cores busy |
| 5 | `Memory capacity provisioned [KB]` | not used |
| 6 | `Memory usage [KB]` | memory in use |
| 7, 8 | `Disk read / write throughput [KB/s]` | not used |
| 9, 10 | `Network received / transmitted throughput [KB/s]` | traffic in and out |

A row is one sample covering the 300 s before its timestamp, so it is 1/12 of an hour of use.
It becomes one usage event per meter, each quantity computed exactly in `Decimal` from the CSV
text and rounded once, half-up, to 6 decimal places:

- `cpu_hours`       = cores x CPU usage % / 100 / 12 (vCPU-hours)
- `memory_gb_hours` = memory usage KB / 1048576 / 12 (GiB-hours)
- `bandwidth_gb`    = (received + transmitted KB/s) x 300 / 1048576 (GiB moved in the sample)

Each event is a CloudEvent: `id` `<vm>-<timestamp>-<meter>` (stable, so importing the trace twice
counts once), `source` `bitbrains`, `type` `billing.usage`, `subject` the tenant whose
`usage_sources` in the tenants file name the VM, `time` the row's timestamp (RFC 3339, UTC),
`data.service` the service given there, `data.resource_id` the VM id. A row with another field
count, a non-number, a negative or non-finite value, or a timestamp that is not whole seconds
raises `BadRow` (the importer dead-letters it); rows of VMs no tenant claims are skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

SOURCE = "bitbrains"
FIELDS = 11
_SIX = Decimal("0.000001")
_EXACT = Context(prec=80)  # wide enough that only the final rounding to 6 places rounds
_TWELVE = Decimal(12)
_HUNDRED = Decimal(100)
_MIB = Decimal(1048576)
_SAMPLE_SECONDS = Decimal(300)
#: Column indexes of the fields used.
TIMESTAMP, CORES, CPU_PCT, MEM_KB, NET_RX, NET_TX = 0, 1, 4, 6, 9, 10


class BadRow(ValueError):
    """A trace row that cannot be converted (wrong field count, non-numeric, negative or
    non-finite value)."""


@dataclass(frozen=True)
class Owner:
    """Who a VM's usage belongs to."""

    tenant_id: str
    service: str


@dataclass(frozen=True)
class RowUsage:
    """The usage of one trace row: its Unix time and quantity per meter."""

    timestamp: int
    quantities: dict[str, Decimal]


def load_owners(tenants_file: Path, trace_name: str | None = None) -> dict[str, Owner]:
    """vm id -> owner from a tenants file's `usage_sources` (`{"vm", "service", "trace"}` per
    source, in each tenant of `tenants`).

    With `trace_name`, only sources of that trace count; otherwise VMs match by id alone.
    Raises `ValueError` if a VM is claimed by two tenants.
    """
    raw: dict[str, Any] = json.loads(tenants_file.read_text())
    owners: dict[str, Owner] = {}
    for tenant in raw["tenants"]:
        for src in tenant.get("usage_sources", []):
            if trace_name is not None and src.get("trace") != trace_name:
                continue
            vm, owner = str(src["vm"]), Owner(tenant["tenant_id"], src["service"])
            if owners.get(vm, owner) != owner:
                raise ValueError(f"VM {vm} is claimed by {owners[vm]} and {owner}")
            owners[vm] = owner
    return owners


def _number(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise BadRow(f"not a number: {text.strip()[:40]!r}") from exc
    if not value.is_finite():
        raise BadRow(f"not finite: {text.strip()[:40]!r}")
    if value < 0:
        raise BadRow(f"negative: {text.strip()[:40]!r}")
    return value


def _round(value: Decimal) -> Decimal:
    return value.quantize(_SIX, rounding=ROUND_HALF_UP)


def convert_row(line: str) -> RowUsage:
    """One CSV line (without the header) -> `RowUsage`; raises `BadRow`."""
    fields = line.rstrip("\r\n").split(";")
    if len(fields) != FIELDS:
        raise BadRow(f"{len(fields)} fields, expected {FIELDS}")
    stamp = _number(fields[TIMESTAMP])
    if stamp != stamp.to_integral_value():
        raise BadRow(f"timestamp is not whole seconds: {fields[TIMESTAMP].strip()!r}")
    cores, pct = _number(fields[CORES]), _number(fields[CPU_PCT])
    memory = _number(fields[MEM_KB])
    c = _EXACT
    network = c.add(_number(fields[NET_RX]), _number(fields[NET_TX]))
    return RowUsage(
        int(stamp),
        {
            "cpu_hours": _round(c.divide(c.multiply(cores, pct), _HUNDRED * _TWELVE)),
            "memory_gb_hours": _round(c.divide(memory, _MIB * _TWELVE)),
            "bandwidth_gb": _round(c.divide(c.multiply(network, _SAMPLE_SECONDS), _MIB)),
        },
    )


def rfc3339(timestamp: int) -> str:
    """Unix seconds -> RFC 3339 UTC text ("2013-06-30T22:03:24Z")."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def usage_events(vm: str, owner: Owner, row: RowUsage) -> list[dict[str, Any]]:
    """The CloudEvents (as JSON-ready dicts) of one converted row, one per meter."""
    time = rfc3339(row.timestamp)
    return [
        {
            "specversion": "1.0",
            "id": f"{vm}-{row.timestamp}-{meter}",
            "source": SOURCE,
            "type": "billing.usage",
            "subject": owner.tenant_id,
            "time": time,
            "data": {"meter": meter, "quantity": str(qty), "service": owner.service,
                     "resource_id": vm},
        }
        for meter, qty in row.quantities.items()
    ]
