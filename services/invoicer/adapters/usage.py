"""`UsageSource`: what the invoicer needs to know about usage, and its two implementations.

The invoicer prices usage totals over a period, reads the tenant's usage marker before reading
any usage (for an invoice run, many tenants' markers and totals at once), and asks whether
usage of an invoiced period changed after that marker (late usage, docs/invoicing.md,
"Late usage"). The usage collector owns the data: `CollectorUsage` reads it
only through `services.usage_collector.api`; `InMemoryUsage` holds usage in this process for
unit tests. One suite (tests/contracts/test_usage_source.py) checks both.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase

from contracts.base import utc_now
from services.usage_collector.api import (
    UsageTotal,
    usage_changed_since,
    usage_marker,
    usage_markers,
    usage_totals,
    usage_totals_many,
)

HOUR = timedelta(hours=1)
#: (tenant id, start, end): a tenant's usage over [start, end).
Request = tuple[str, datetime, datetime]

__all__ = ["CollectorUsage", "InMemoryUsage", "Request", "UsageSource", "UsageTotal"]


class UsageSource(Protocol):
    """Read-only usage of a tenant, as the usage collector accepted it."""

    async def totals(self, tenant_id: str, start: datetime, end: datetime) -> list[UsageTotal]:
        """Usage in [start, end) per service and meter (quantity per the meter's aggregation,
        exact decimals), sorted by service then meter; meters without events are absent.
        Exact for bounds on quarter-hours (docs/usage.md#quarter-hours)."""
        ...

    async def marker(self, tenant_id: str) -> int:
        """The tenant's usage sequence now (0 without usage). Read it BEFORE reading usage:
        any change that read does not see has a larger sequence (docs/usage.md#sequence)."""
        ...

    async def markers(self, tenant_ids: Sequence[str]) -> dict[str, int]:
        """`marker` of every tenant of `tenant_ids` (0 without usage), read at once. Read
        them BEFORE reading the usage they guard."""
        ...

    async def totals_many(
        self, requests: Sequence[Request]
    ) -> dict[Request, list[UsageTotal]]:
        """For each (tenant_id, start, end) of `requests`, exactly what `totals` returns for
        it, read at once (a repeated request appears once)."""
        ...

    async def changed_since(
        self, tenant_id: str, start: datetime, end: datetime, marker: int
    ) -> bool:
        """Whether usage in an hour overlapping [start, end) changed after `marker`."""
        ...


class CollectorUsage:
    """`UsageSource` over the collector's MongoDB data, through its public api module. `db` must
    decode `Decimal128` as `Decimal` (`services.common.mongo.CODEC_OPTIONS`)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db

    async def totals(self, tenant_id: str, start: datetime, end: datetime) -> list[UsageTotal]:
        """See `UsageSource.totals`."""
        return await usage_totals(self.db, tenant_id, start, end)

    async def marker(self, tenant_id: str) -> int:
        """See `UsageSource.marker`."""
        return await usage_marker(self.db, tenant_id)

    async def markers(self, tenant_ids: Sequence[str]) -> dict[str, int]:
        """See `UsageSource.markers`: one query (docs/usage.md#reading-many-tenants-at-once)."""
        return await usage_markers(self.db, tenant_ids)

    async def totals_many(
        self, requests: Sequence[Request]
    ) -> dict[Request, list[UsageTotal]]:
        """See `UsageSource.totals_many`: one query per collection for all the requests
        (docs/usage.md#reading-many-tenants-at-once)."""
        return await usage_totals_many(self.db, requests)

    async def changed_since(
        self, tenant_id: str, start: datetime, end: datetime, marker: int
    ) -> bool:
        """See `UsageSource.changed_since`."""
        return await usage_changed_since(self.db, tenant_id, start, end, marker)


@dataclass(frozen=True)
class _Event:
    tenant_id: str
    service: str
    meter: str
    quarter: datetime
    quantity: Decimal
    seq: int
    recorded_at: datetime


def _quarter_of(at: datetime) -> datetime:
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


@dataclass
class InMemoryUsage:
    """`UsageSource` held in this process: `sum` meters only, each `add` one committed event
    (with the tenant's next sequence). Counts an event in the interval holding the start of
    its quarter-hour, as the collector does."""

    events: list[_Event] = field(default_factory=list)
    sequences: dict[str, int] = field(default_factory=dict)

    def add(self, tenant_id: str, meter: str, service: str, at: datetime, quantity: str) -> None:
        """Record one usage event of `quantity` (a decimal string) at instant `at`."""
        seq = self.sequences.get(tenant_id, 0) + 1
        self.sequences[tenant_id] = seq
        self.events.append(_Event(tenant_id, service, meter, _quarter_of(at), Decimal(quantity),
                                  seq, utc_now()))

    async def totals(self, tenant_id: str, start: datetime, end: datetime) -> list[UsageTotal]:
        """See `UsageSource.totals`."""
        groups: dict[tuple[str, str], list[_Event]] = {}
        for e in self.events:
            if e.tenant_id == tenant_id and start <= e.quarter < end:
                groups.setdefault((e.service, e.meter), []).append(e)
        return [
            UsageTotal(service=service, meter=meter, aggregation="sum",
                       quantity=sum((e.quantity for e in found), Decimal(0)), events=len(found),
                       last_changed=max(e.recorded_at for e in found))
            for (service, meter), found in sorted(groups.items())
        ]

    async def marker(self, tenant_id: str) -> int:
        """See `UsageSource.marker`."""
        return self.sequences.get(tenant_id, 0)

    async def markers(self, tenant_ids: Sequence[str]) -> dict[str, int]:
        """See `UsageSource.markers`."""
        return {tenant_id: await self.marker(tenant_id) for tenant_id in tenant_ids}

    async def totals_many(
        self, requests: Sequence[Request]
    ) -> dict[Request, list[UsageTotal]]:
        """See `UsageSource.totals_many`."""
        return {request: await self.totals(*request) for request in requests}

    async def changed_since(
        self, tenant_id: str, start: datetime, end: datetime, marker: int
    ) -> bool:
        """See `UsageSource.changed_since`."""
        return any(
            e.tenant_id == tenant_id and e.seq > marker
            and start - HOUR < e.quarter.replace(minute=0) < end
            for e in self.events
        )
