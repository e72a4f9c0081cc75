"""Usage limits per billing period: what the entitlement check answers (docs/limits.md).

Pure shapes and rules (no I/O): `Entitlement`, the used value of a window per meter
aggregation, and which thresholds a used value has reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from contracts.plans import THRESHOLDS


@dataclass(frozen=True)
class Entitlement:
    """A tenant's standing against the limit of one meter in the billing period containing
    `as_of`'s request time: `limit` (None: the meter has no limit), `used` (the period's
    aggregate of the meter, in its unit), `remaining` (max(limit - used, 0), None without a
    limit), `allowed` (False only for a `hard` limit with used >= limit), the period
    [`period_start`, `period_end`) and `as_of` (when `used` was last brought up to date)."""

    tenant_id: str
    meter: str
    limit: Decimal | None
    used: Decimal
    remaining: Decimal | None
    allowed: bool
    hard: bool
    period_start: datetime
    period_end: datetime
    as_of: datetime


def entitlement_of(
    tenant_id: str, meter: str, limit: Decimal | None, hard: bool, used: Decimal,
    period: tuple[datetime, datetime], as_of: datetime,
) -> Entitlement:
    """The entitlement for `used` against `limit`: usage is refused (allowed False) only by a
    hard limit that `used` has reached (used >= limit); a soft limit always allows (usage
    beyond it is billed as overage)."""
    remaining = None if limit is None else max(limit - used, Decimal(0))
    allowed = not (hard and limit is not None and used >= limit)
    return Entitlement(tenant_id, meter, limit, used, remaining, allowed, hard and limit is not
                       None, period[0], period[1], as_of)


def reached(used: Decimal, limit: Decimal) -> list[int]:
    """The thresholds (percent of `limit`, `contracts.plans.THRESHOLDS`) that `used` has
    reached: used * 100 >= limit * percent, exactly (no rounding)."""
    return [t for t in THRESHOLDS if used * 100 >= limit * t]


def percent_used(used: Decimal, limit: Decimal) -> Decimal:
    """`used` as a percentage of `limit` (> 0)."""
    return used * 100 / limit
