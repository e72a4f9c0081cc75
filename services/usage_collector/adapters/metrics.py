"""Prometheus metrics of the usage collector (served on the worker's `/metrics`)."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "billing_usage_events_total",
    "Usage events consumed, by outcome (aggregated, duplicate, dead_lettered).",
    ["outcome"],
)
BATCH_SIZE = Histogram(
    "billing_usage_batch_size_events",
    "Kafka records per MongoDB batch transaction.",
    buckets=(1, 10, 100, 500, 1_000, 2_500, 5_000, 10_000, 20_000, 40_000),
)
WRITE_SECONDS = Histogram(
    "billing_usage_write_seconds",
    "Time to make one batch durable (dead letters, transaction, offset commit).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WRITE_RETRIES = Counter(
    "billing_usage_write_retries_total", "Batch transactions retried after a transient error."
)
CONSUMER_LAG = Gauge(
    "billing_usage_consumer_lag_messages",
    "Records between the partition's high watermark and the next record to consume.",
    ["partition"],
)
BUCKETS_WRITTEN = Counter(
    "billing_usage_buckets_written_total", "Hour buckets inserted or updated."
)
RELEASES_ABANDONED = Counter(
    "billing_usage_releases_abandoned_total",
    "Rebalances or stops that cancelled a batch write past the grace (its records are "
    "redelivered, not lost).",
)
THRESHOLD_EVENTS = Counter(
    "billing_usage_threshold_events_total",
    "UsageThresholdReached events written to the collector's outbox, by threshold (80, 100).",
    ["threshold"],
)
LIMITS_UPDATES = Counter(
    "billing_usage_limits_updates_total",
    "UsageLimitsChanged messages, by outcome (applied, stale: an older or repeated version).",
    ["outcome"],
)
