"""Publishing dead letters of the collector on `billing.dead-letter.v1`."""

from __future__ import annotations

import asyncio
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from services.common.settings import CommonSettings
from services.common.worker import send_dead_letter
from services.usage_collector.adapters.metrics import EVENTS
from services.usage_collector.adapters.store import recorded_dead_letters
from services.usage_collector.handlers import DeadRecord
from services.usage_collector.names import SERVICE


class KafkaDeadLetters:
    """Publishes `DeadRecord`s (original bytes, topic, partition, offset, reason) and counts
    them in `billing_dead_letters_total{service="usage_collector", reason}`.

    Messages whose dead-lettering is already recorded in MongoDB (a replay) are not published
    again; a crash before the batch's transaction may publish one twice (at least once).
    """

    def __init__(
        self, broker: KafkaBroker, settings: CommonSettings, db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.db = db

    async def __call__(self, dead: list[DeadRecord]) -> None:
        done = await recorded_dead_letters(self.db, [d.record_id for d in dead])
        todo = [d for d in dead if d.record_id not in done]
        await asyncio.gather(*(self._send(d) for d in todo))
        EVENTS.labels(outcome="dead_lettered").inc(len(todo))

    async def _send(self, d: DeadRecord) -> None:
        await send_dead_letter(
            self.broker, self.settings, service=SERVICE, topic=d.topic, partition=d.partition,
            offset=d.offset, key=d.key, value=d.value, reason=d.reason, detail=d.detail,
        )
