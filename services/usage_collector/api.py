"""What other services and the demo call: publishing, importing, totals, progress and the
per-tenant usage sequence marker (docs/usage.md#sequence); `record_usage` for tools and tests
that need usage stored without Kafka; `check_usage` (validate an event as the collector
accepts it, `Rejected` otherwise) for other publishers; and the collector's names: `SERVICE`,
`WORKER`, `CONSUMES` ((contract topic, consumer group) per subscription) and `OUTBOXES`;
usage limits: `Entitlement`, `entitlement` (the check a platform service makes before
starting a computation) and `tenants_at_limits` (docs/limits.md); many tenants at once, for an
invoice run: `usage_markers` and `usage_totals_many`
(docs/usage.md#reading-many-tenants-at-once)."""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from contracts.base import utc_now
from contracts.usage import UsageRecorded
from services.usage_collector.acceptance import Rejected, parse, to_sample
from services.usage_collector.acceptance import check as check_usage
from services.usage_collector.adapters.store import MongoUsageStore, collector_stats, ensure_indexes
from services.usage_collector.bulk_read import usage_markers, usage_totals_many
from services.usage_collector.importer import ImportReport, import_bitbrains, publish_jsonl
from services.usage_collector.limits import Entitlement
from services.usage_collector.limits_read import entitlement, tenants_at_limits
from services.usage_collector.merge import BatchMerge
from services.usage_collector.names import CONSUMES, OUTBOXES, SERVICE, WORKER
from services.usage_collector.query import (
    UsageTotal,
    newest_hour,
    usage_changed_since,
    usage_marker,
    usage_totals,
)

__all__ = [
    "CONSUMES",
    "OUTBOXES",
    "SERVICE",
    "WORKER",
    "Entitlement",
    "ImportReport",
    "Rejected",
    "UsageTotal",
    "check_usage",
    "collector_stats",
    "entitlement",
    "import_bitbrains",
    "newest_hour",
    "publish_jsonl",
    "record_usage",
    "tenants_at_limits",
    "usage_totals",
    "usage_marker",
    "usage_changed_since",
    "usage_markers",
    "usage_totals_many",
]


async def record_usage(
    db: AsyncDatabase[dict[str, Any]], events: Sequence[UsageRecorded | bytes],
    clock: Callable[[], datetime] = utc_now,
) -> None:
    """Accept usage events (`UsageRecorded` models, or CloudEvents as JSON bytes) and commit
    them in one batch exactly as the worker does: buckets, quarter-hours and the tenant's usage
    sequence (docs/usage.md). A model is taken as it is (the wire validation already happened,
    or was skipped on purpose with `model_construct`); the collector's own acceptance checks
    still apply. `clock` stamps the buckets' informative `updated_at`. Raises
    `acceptance.Rejected` (with its dead-letter reason) for an event the worker would refuse."""
    await ensure_indexes(db)
    merge = BatchMerge()
    for event in events:
        merge.add(parse(event) if isinstance(event, bytes) else to_sample(event))
    await MongoUsageStore(db, clock=clock).apply(merge, [])
