"""Pure conversion of the Bitbrains "Rnd" trace into usage events (../shared/data/README.md).

Files `<dir>/<month>/<vm>.csv`, fields separated by `;` plus a tab, one header row. One row
(a 300 s sample ending at its Unix timestamp) gives one CloudEvent per meter, computed in
`Decimal` from the CSV text and rounded half-up to 6 places:

- cpu_hours       = CPU cores x CPU usage [%] / 100 / 12
- memory_gb_hours = Memory usage [KB] / 1048576 / 12
- bandwidth_gb    = (Network received + Network transmitted [KB/s]) x 300 / 1048576

id `<vm>-<timestamp>-<meter>`, source `bitbrains`, subject = the tenant owning the VM,
`data.service` from tenants.json's `usage_sources`.
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
    """vm id -> owner from tenants.json's `usage_sources` (shape: ../shared/data/tenants.json).

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
