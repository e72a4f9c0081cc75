"""What other services and the demo call: publishing, importing, totals, progress and the
per-tenant usage sequence marker (docs/usage.md#sequence); and the collector's names: `SERVICE`,
`WORKER`, `CONSUMES` ((contract topic, consumer group) per subscription) and `OUTBOXES`."""

from services.usage_collector.adapters.store import collector_stats
from services.usage_collector.importer import ImportReport, import_bitbrains, publish_jsonl
from services.usage_collector.names import CONSUMES, OUTBOXES, SERVICE, WORKER
from services.usage_collector.query import (
    UsageTotal,
    usage_changed_since,
    usage_marker,
    usage_totals,
)

__all__ = [
    "CONSUMES",
    "OUTBOXES",
    "SERVICE",
    "WORKER",
    "ImportReport",
    "UsageTotal",
    "collector_stats",
    "import_bitbrains",
    "publish_jsonl",
    "usage_totals",
    "usage_marker",
    "usage_changed_since",
]
