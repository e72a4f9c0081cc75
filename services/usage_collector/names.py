"""The usage collector's names, defined once (docs/design.md#services).

The collector writes no outbox: what it produces lives in its own collections (docs/usage.md).
"""

from typing import Final

from contracts import TOPIC_USAGE

#: The service: `service` field of its dead letters and label of its metrics.
SERVICE: Final = "usage_collector"
#: The worker of `billing run`, the Kafka client name and the default consumer group
#: (`BILLING_USAGE_GROUP`, before the topic prefix).
WORKER: Final = "usage-collector"
#: (contract topic, consumer group before the topic prefix) of each subscription of the worker.
CONSUMES: Final[tuple[tuple[str, str], ...]] = ((TOPIC_USAGE, WORKER),)
#: Outbox collections the service writes: none.
OUTBOXES: Final[tuple[str, ...]] = ()
