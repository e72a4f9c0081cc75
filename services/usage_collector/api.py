"""What other services and the demo call: publishing, importing, totals, progress and the
per-tenant usage sequence marker (docs/usage.md#sequence)."""

from services.usage_collector.adapters.store import collector_stats
from services.usage_collector.importer import ImportReport, import_bitbrains, publish_jsonl
from services.usage_collector.query import (
    UsageTotal,
    usage_changed_since,
    usage_marker,
    usage_totals,
)

__all__ = [
    "ImportReport",
    "UsageTotal",
    "collector_stats",
    "import_bitbrains",
    "publish_jsonl",
    "usage_totals",
    "usage_marker",
    "usage_changed_since",
]
