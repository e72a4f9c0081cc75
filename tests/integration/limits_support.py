"""Helpers the usage limits tests share (no tests here): CloudEvents usage as the ingress
accepts it, a collector batch of them, and the invoicer's limits update (docs/limits.md)."""

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from contracts.plans import PlanLimit, UsageLimitsChanged, UsageLimitWindow
from services.usage_collector.acceptance import parse
from services.usage_collector.merge import BatchMerge


def event(n: int, qty: str, time: str = "2026-03-10T10:05:00Z", tenant: str = "acme",
          meter: str = "cpu_hours", **data: Any) -> bytes:
    """Usage event `e{n}` of `tenant`: `qty` (a decimal string) of `meter` from service jobs at
    `time` (RFC 3339); `data` adds fields such as `aggregation` and `resource_id`."""
    return json.dumps({
        "specversion": "1.0", "id": f"e{n}", "source": "test", "type": "billing.usage",
        "subject": tenant, "time": time,
        "data": {"meter": meter, "quantity": qty, "service": "jobs", **data},
    }).encode()


def batch(*raw: bytes) -> BatchMerge:
    """One collector batch of the raw events, merged as the consumer merges a poll."""
    merge = BatchMerge()
    for value in raw:
        merge.add(parse(value))
    return merge


def limits_changed(version: int, *periods: tuple[datetime, datetime], limit: str = "100",
                   hard: bool = True, tenant: str = "acme",
                   meter: str = "cpu_hours") -> UsageLimitsChanged:
    """Limits update `version` of `tenant`: one window per (start, end) in `periods`, each
    with `meter` limited to `limit` (hard or soft)."""
    lim = (PlanLimit(meter=meter, limit=Decimal(limit), hard=hard),)
    return UsageLimitsChanged(tenant_id=tenant, version=version, windows=tuple(
        UsageLimitWindow(period_start=s, period_end=e, limits=lim) for s, e in periods))
