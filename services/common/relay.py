"""The one way a worker or a command builds its outbox relay (docs/design.md#reliability).

`outbox_relay(broker, settings, db, collection, service)` publishes through the worker's
FastStream broker with the settings' topic prefix; a worker runs `relay.run` as a background
task of `serve_worker`, a one-off command calls `await relay.drain()`. Metrics are labelled
with `service` and the collection (`services.common.metrics`).
"""

from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from services.common.outbox import OutboxRelay, Publish
from services.common.settings import CommonSettings
from services.common.worker import raw_publisher


def outbox_relay(
    broker: KafkaBroker,
    settings: CommonSettings,
    db: AsyncDatabase[dict[str, Any]],
    collection: str,
    service: str,
    *,
    publish: Publish | None = None,
) -> OutboxRelay:
    """The relay of `service`'s outbox `collection` in `db`, publishing through `broker`
    (or `publish`, when given: tests hold publishing back with it) to the settings' topics."""
    return OutboxRelay(
        db, collection, publish or raw_publisher(broker), settings.topic, service=service
    )
