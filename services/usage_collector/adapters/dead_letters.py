"""Publishing dead letters of the collector on `billing.dead-letter.v1`, through the platform's
one dead-letter path (`services.common.deadletter`)."""

from __future__ import annotations

import asyncio
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from services.common.deadletter import DeadLetter, publish_dead_letter
from services.common.settings import CommonSettings
from services.common.worker import raw_publisher
from services.usage_collector.adapters.metrics import EVENTS
from services.usage_collector.adapters.processed import recorded_dead_letters
from services.usage_collector.handlers import record_id
from services.usage_collector.names import SERVICE


class KafkaDeadLetters:
    """Publishes `DeadLetter`s (original bytes, topic, partition, offset, reason) and counts
    them in `billing_dead_letters_total{service="usage_collector", reason}`.

    Messages whose dead-lettering is already recorded in MongoDB (a replay) are not published
    again; a crash before the batch's transaction may publish one twice (at least once).
    Raises `DependencyUnavailable` when the broker or MongoDB does not answer.
    """

    def __init__(
        self, broker: KafkaBroker, settings: CommonSettings, db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        self.publish = raw_publisher(broker)
        self.settings = settings
        self.db = db

    async def __call__(self, dead: list[DeadLetter]) -> None:
        done = await recorded_dead_letters(self.db, [record_id(d) for d in dead])
        todo = [d for d in dead if record_id(d) not in done]
        await asyncio.gather(
            *(publish_dead_letter(self.publish, self.settings, SERVICE, d) for d in todo)
        )
        EVENTS.labels(outcome="dead_lettered").inc(len(todo))
