"""Prometheus metrics every worker shares (`billing_` prefix, unit suffixes)."""

from prometheus_client import Counter, Gauge

DEAD_LETTERS = Counter(
    "billing_dead_letters_total",
    "Messages sent to the dead-letter topic, by service and reason.",
    ["service", "reason"],
)
OUTBOX_BACKLOG = Gauge(
    "billing_outbox_backlog", "Outbox entries not yet published to Kafka.", ["service"]
)
OUTBOX_PUBLISHED = Counter(
    "billing_outbox_published_total", "Outbox entries published to Kafka.", ["service"]
)
RETRIES = Counter(
    "billing_retries_total",
    "Retries of a message or write after a transient failure, by service and reason.",
    ["service", "reason"],
)
MESSAGES = Counter(
    "billing_messages_total",
    "Messages a worker's runtime finished with, by service and outcome "
    "(processed, ignored: a type the subscriber does not take, dead_lettered).",
    ["service", "outcome"],
)
