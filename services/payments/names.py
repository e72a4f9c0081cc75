"""The payments service's names, defined once: its service names (also its consumer group and
the worker names of `billing run`), the topics it consumes, and its outbox collection."""

from typing import Final

from contracts import TOPIC_INVOICE, TOPIC_STRIPE_EVENTS
from services.common.outbox import outbox_collection

#: The payments worker (`billing run payments`): consumer group, dead-letter `service` field.
SERVICE: Final = "payments"
#: The Stripe webhook ingress (`billing run stripe-webhooks`).
WEBHOOKS_SERVICE: Final = "stripe-webhooks"
#: (contract topic, consumer group before the topic prefix) of each subscription of the worker.
CONSUMES: Final[tuple[tuple[str, str], ...]] = (
    (TOPIC_INVOICE, SERVICE),
    (TOPIC_STRIPE_EVENTS, SERVICE),
)
#: The outbox collection of the service (`payments_outbox`).
OUTBOX: Final = outbox_collection(SERVICE)
#: Every outbox collection the service writes.
OUTBOXES: Final[tuple[str, ...]] = (OUTBOX,)
