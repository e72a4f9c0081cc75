"""Expected invoice figures computed independently of the platform's code, straight from the
Bitbrains CSV rows and the pricing rules in docs/design.md#pricing."""

from collections import defaultdict
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

SIX = Decimal("0.000001")


def row_quantities(fields: list[str]) -> dict[str, Decimal]:
    """The three meters of one CSV row, rounded half-up to 6 places (the data README)."""
    cores, cpu_pct, mem_kb = Decimal(fields[1]), Decimal(fields[4]), Decimal(fields[6])
    rx, tx = Decimal(fields[9]), Decimal(fields[10])
    return {
        "cpu_hours": (cores * cpu_pct / 100 / 12).quantize(SIX, ROUND_HALF_UP),
        "memory_gb_hours": (mem_kb / 1048576 / 12).quantize(SIX, ROUND_HALF_UP),
        "bandwidth_gb": ((rx + tx) * 300 / 1048576).quantize(SIX, ROUND_HALF_UP),
    }


def usage_by_meter(
    trace: Path, vms: set[str], start: datetime, end: datetime
) -> dict[str, Decimal]:
    """Meter -> total quantity of `vms`' rows with start <= timestamp < end; a repeated
    (vm, timestamp) counts once (the first row), as the event ids make it."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    seen: set[tuple[str, str]] = set()
    lo, hi = int(start.timestamp()), int(end.timestamp())
    for path in sorted(trace.glob("*/*.csv")):
        if path.stem not in vms:
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = [f.strip() for f in line.split(";")]
            if len(fields) != 11 or (path.stem, fields[0]) in seen:
                continue
            seen.add((path.stem, fields[0]))
            if lo <= int(fields[0]) < hi:
                for meter, qty in row_quantities(fields).items():
                    totals[meter] += qty
    return dict(totals)


def minor(amount: Decimal, exponent: int = 2) -> int:
    """Major units -> minor units, rounded once, half-up."""
    return int((amount * (10**exponent)).quantize(Decimal(1), ROUND_HALF_UP))
