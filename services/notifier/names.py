"""The notifier's names, defined once (docs/design.md#services)."""

from typing import Final

from contracts import TOPIC_INVOICE, TOPIC_TENANT, TOPIC_USAGE_ALERTS
from services.common.outbox import outbox_collection

#: The worker (`billing run notifier`): consumer group before the topic prefix, Kafka client
#: name, `service` field of its dead letters and label of its metrics.
SERVICE: Final = "notifier"
#: (contract topic, consumer group before the topic prefix) of each subscription of the worker.
CONSUMES: Final[tuple[tuple[str, str], ...]] = (
    (TOPIC_INVOICE, SERVICE),
    (TOPIC_TENANT, SERVICE),
    (TOPIC_USAGE_ALERTS, SERVICE),
)
#: The outbox collection of the service (`notifier_outbox`).
OUTBOX: Final = outbox_collection(SERVICE)
#: Every outbox collection the service writes.
OUTBOXES: Final[tuple[str, ...]] = (OUTBOX,)
