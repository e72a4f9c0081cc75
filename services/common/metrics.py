"""Prometheus metrics every worker shares (`billing_` prefix, unit suffixes).

Outbox metrics are labelled by `service` and `outbox` (the collection): the relay updates them
each round (`services/common/outbox.py`). Which alert reads which metric: docs/operations.md.
"""

from prometheus_client import Counter, Gauge

DEAD_LETTERS = Counter(
    "billing_dead_letters_total",
    "Messages sent to the dead-letter topic, by service and reason.",
    ["service", "reason"],
)
OUTBOX_BACKLOG = Gauge(
    "billing_outbox_backlog",
    "Outbox entries not yet published to Kafka, measured by the relay each round.",
    ["service", "outbox"],
)
OUTBOX_PUBLISHED = Counter(
    "billing_outbox_published_total",
    "Outbox entries published to Kafka (acknowledged by the broker) and marked published.",
    ["service", "outbox"],
)
BACKGROUND_FAILURES = Counter(
    "billing_background_failures_total",
    "Failed rounds of a worker's periodic background task (outbox relay, cycle, dunning).",
    ["task"],
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
