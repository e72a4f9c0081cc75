"""The usage collector's names, defined once (docs/design.md#services).

What the collector aggregates lives in its own collections (docs/usage.md); its one outbox
holds the usage threshold alerts (docs/limits.md).
"""

from typing import Final

from contracts import TOPIC_TENANT, TOPIC_USAGE

#: The service: `service` field of its dead letters and label of its metrics.
SERVICE: Final = "usage_collector"
#: The worker of `billing run`, the Kafka client name and the default consumer group
#: (`BILLING_USAGE_GROUP`, before the topic prefix).
WORKER: Final = "usage-collector"
#: The consumer group of the usage limits projection (`UsageLimitsChanged` on the tenant topic).
LIMITS_GROUP: Final = f"{WORKER}-limits"
#: (contract topic, consumer group before the topic prefix) of each subscription of the worker.
CONSUMES: Final[tuple[tuple[str, str], ...]] = ((TOPIC_USAGE, WORKER), (TOPIC_TENANT, LIMITS_GROUP))
#: The outbox of the usage threshold alerts (relayed to `billing.usage-alerts.v1`).
OUTBOX: Final = f"{SERVICE}_outbox"
#: Outbox collections the service writes.
OUTBOXES: Final[tuple[str, ...]] = (OUTBOX,)
