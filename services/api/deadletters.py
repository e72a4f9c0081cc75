"""The dead letters operators see: every `DeadLettered` event of `billing.dead-letter.v1`,
kept by the API in `api_dead_letters` for 7 days (docs/api-endpoints.md, "Operations").

The API process consumes the topic in group `api.dead-letters` (topic and group namespaced by
the settings like every worker's) on a broker of its own (`DeadLetterConsumer`), started in the
background once the API serves: joining a consumer group takes seconds, and the API's start
does not wait for it. It stores each event under its `event_id` with an insert
that leaves an existing record alone, so a redelivery changes nothing. A record that is not a
`DeadLettered` event is counted in `billing_api_dead_letters_unreadable_total`, logged and
skipped: it is never dead-lettered itself (that would feed the topic it came from) and never
blocks the partition. A MongoDB outage is retried in place while it lasts (the record is not
acknowledged until stored); any other database error is counted in
`billing_api_dead_letters_not_stored_total`, logged and skipped.

Each stored record expires 7 days after the event occurred (TTL index on `expires_at`).
"""

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, PyMongoError

from contracts import TOPIC_DEAD_LETTER, DeadLettered
from services.common.backoff import retry_forever
from services.common.codec import decode
from services.common.consumer import raw_body
from services.common.deadletter import MessageSource
from services.common.errors import InvalidMessage
from services.common.settings import CommonSettings
from services.common.worker import make_broker

log = logging.getLogger(__name__)
COLLECTION = "api_dead_letters"
#: The consumer group (namespaced by the settings' prefixes).
GROUP = "api.dead-letters"
#: How long a dead letter stays listed after it occurred.
KEEP = timedelta(days=7)
_SORT = [("occurred_at", -1), ("_id", -1)]

UNREADABLE = Counter(
    "billing_api_dead_letters_unreadable_total",
    "Records of the dead-letter topic that are not DeadLettered events, skipped by the API.",
)
NOT_STORED = Counter(
    "billing_api_dead_letters_not_stored_total",
    "Dead letters the API could not store (an unexpected database error), logged and skipped.",
)
STORED = Counter(
    "billing_api_dead_letters_stored_total",
    "Dead letters the API stored for operators (a redelivery is counted again).",
)


def record_of(event: DeadLettered) -> dict[str, Any]:
    """The stored document of `event` (`_id` its event id; `expires_at` = occurred + 7 days)."""
    return {
        "_id": event.event_id, "occurred_at": event.occurred_at, "service": event.service,
        "topic": event.topic, "partition": event.partition, "offset": event.offset,
        "key": event.key, "reason": event.reason, "detail": event.detail,
        "original": event.original, "original_encoding": event.original_encoding,
        "expires_at": event.occurred_at + KEEP,
    }


async def store(db: AsyncDatabase[dict[str, Any]], event: DeadLettered) -> bool:
    """Keep `event`; True when it was new, False when its event id was stored already (the
    stored record is left unchanged)."""
    result = await db[COLLECTION].update_one(
        {"_id": event.event_id}, {"$setOnInsert": record_of(event)}, upsert=True)
    STORED.inc()
    return result.upserted_id is not None


async def handle(db: AsyncDatabase[dict[str, Any]], source: MessageSource) -> str:
    """Store the dead letter at `source`: `stored`, `duplicate`, `unreadable` or `not_stored`
    (both counted, logged, skipped). A MongoDB connection failure is retried until it
    succeeds; any other database error skips the record rather than block the partition."""
    try:
        event = decode(source.value, list(source.headers), [DeadLettered])
    except InvalidMessage as exc:
        event = None
        why = f"{exc.reason}: {exc.detail[:200]}"
    else:
        why = "another event type"
    if not isinstance(event, DeadLettered):
        UNREADABLE.inc()
        log.warning("skipped an unreadable record of the dead-letter topic (%s)", why,
                    extra={"topic": source.topic, "partition": source.partition,
                           "offset": source.offset})
        return "unreadable"
    try:
        new = await retry_forever(lambda: store(db, event), stop=None, service="api",
                                  what=f"dead letter {event.event_id}",
                                  retry_on=(ConnectionFailure,))
    except PyMongoError:  # not an outage: retrying would hold up the partition for good
        NOT_STORED.inc()
        log.exception("could not store dead letter %s; skipped", event.event_id)
        return "not_stored"
    return "stored" if new else "duplicate"


def subscribe_dead_letters(broker: KafkaBroker, settings: CommonSettings,
                           db: AsyncDatabase[dict[str, Any]]) -> None:
    """Register the dead-letter consumer on `broker` (call before the broker starts)."""

    async def on_dead_letter(body: bytes, message: KafkaMessage) -> None:
        await handle(db, MessageSource.of(message.raw_message))  # type: ignore[arg-type]

    subscriber = broker.subscriber(
        settings.topic(TOPIC_DEAD_LETTER), group_id=settings.group(GROUP),
        auto_offset_reset="earliest", ack_policy=AckPolicy.NACK_ON_ERROR, decoder=raw_body,
    )
    subscriber(on_dead_letter)


class DeadLetterConsumer:
    """The API's dead-letter consumer on its own broker: `start()` returns at once (the broker
    connects and joins the group in a background task); `stop()` cancels a start still under
    way and stops the broker (in-flight records are not acknowledged and come again)."""

    def __init__(self, settings: CommonSettings, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.broker = make_broker(settings, name="api.dead-letters")
        subscribe_dead_letters(self.broker, settings, db)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start consuming in the background (a failed start is logged, the API serves on)."""
        self._task = asyncio.create_task(self._run(), name="api dead-letter consumer")

    async def _run(self) -> None:
        try:
            await self.broker.start()
        except Exception:
            log.exception("the dead-letter consumer did not start; dead letters are not listed")

    async def stop(self) -> None:
        """Stop consuming; safe when never started."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.broker.stop()


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    """The TTL index (`expires_at`) and the listing's sort index."""
    await db[COLLECTION].create_index("expires_at", expireAfterSeconds=0)
    await db[COLLECTION].create_index(_SORT)


async def recent(db: AsyncDatabase[dict[str, Any]], since: datetime,
                 before: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` stored dead letters that occurred at or after `since`, newest first
    (ties by event id, descending), after `before` (`(occurred_at, event_id)` of the last one
    seen)."""
    query: dict[str, Any] = {"occurred_at": {"$gte": since}}
    if before is not None:
        query["$or"] = [{"occurred_at": {"$lt": before[0]}},
                        {"occurred_at": before[0], "_id": {"$lt": before[1]}}]
    return await db[COLLECTION].find(query).sort(_SORT).limit(limit).to_list()
