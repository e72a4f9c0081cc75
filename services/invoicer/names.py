"""The invoicer's names, defined once (docs/design.md#services).

The invoicer's worker reads configuration commands and payment outcomes in one consumer group and
relays one outbox (invoice events and `TenantConfigApplied`, docs/invoicing.md).
"""

from typing import Final

from contracts import TOPIC_PAYMENT, TOPIC_TENANT_CONFIG
from services.common.outbox import outbox_collection

#: The service: `service` field of its dead letters, worker of `billing run`, Kafka client
#: name and consumer group (before the topic prefix).
SERVICE: Final = "invoicer"
#: (contract topic, consumer group before the topic prefix) of each subscription of the worker.
CONSUMES: Final[tuple[tuple[str, str], ...]] = (
    (TOPIC_TENANT_CONFIG, SERVICE),
    (TOPIC_PAYMENT, SERVICE),
)
#: The invoicer's outbox collection.
OUTBOX: Final = outbox_collection(SERVICE)
#: Outbox collections the service writes.
OUTBOXES: Final[tuple[str, ...]] = (OUTBOX,)
