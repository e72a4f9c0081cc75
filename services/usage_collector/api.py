"""What other services and the demo call: publishing, importing, totals and progress."""

from services.usage_collector.adapters.store import collector_stats
from services.usage_collector.importer import ImportReport, import_bitbrains, publish_jsonl
from services.usage_collector.query import UsageTotal, usage_totals

__all__ = [
    "ImportReport",
    "UsageTotal",
    "collector_stats",
    "import_bitbrains",
    "publish_jsonl",
    "usage_totals",
]
