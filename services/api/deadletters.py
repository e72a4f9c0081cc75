"""The dead letters operators see: every `DeadLettered` event of `billing.dead-letter.v1`,
kept by the API in `api_dead_letters` for 7 days (docs/api-endpoints.md, "Operations").

The API process consumes the topic in group `api.dead-letters` (topic and group namespaced by
the settings like every worker's) on a broker of its own (`DeadLetterConsumer`), started in the
background once the API serves: joining a consumer group takes seconds, and the API's start
does not wait for it. A failed start (Kafka unreachable) is counted in
`billing_api_dead_letter_consumer_start_failures_total`, logged and tried again with capped
exponential back-off until it succeeds or the API stops; `billing_api_dead_letter_consumer_up`
is 1 while the consumer runs, else 0. It stores each event under its `event_id` with an insert
that leaves an existing record alone, so a redelivery changes nothing. A record that is not a
`DeadLettered` event is counted in `billing_api_dead_letters_unreadable_total`, logged and
skipped: it is never dead-lettered itself (that would feed the topic it came from) and never
blocks the partition. Every transient MongoDB error (`services.common.mongo_errors`: an
unavailable, interrupted or timed-out server) is retried in place while it lasts (the record
is not acknowledged until stored); a logic error, which retrying cannot fix, is counted in
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
from prometheus_client import Counter, Gauge
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from contracts import TOPIC_DEAD_LETTER, DeadLettered
from services.api.pagination import after_filter
from services.common.backoff import Backoff, retry_forever, wait_or_stop
from services.common.codec import decode
from services.common.consumer import raw_body
from services.common.deadletter import MessageSource
from services.common.errors import DependencyUnavailable, InvalidMessage
from services.common.mongo_errors import LOGIC_ERRORS, mongo_unavailable
from services.common.settings import CommonSettings
from services.common.worker import make_broker

log = logging.getLogger(__name__)
COLLECTION = "api_dead_letters"
#: The consumer group (namespaced by the settings' prefixes).
GROUP = "api.dead-letters"
#: How long a dead letter stays listed after it occurred.
KEEP = timedelta(days=7)
#: Back-off between failed starts of the consumer, in seconds (first delay, longest delay).
START_RETRY_BASE = 1.0
START_RETRY_CAP = 60.0
_SORT = [("occurred_at", -1), ("_id", -1)]
#: Database errors that skip a record: the logic errors (some are not `PyMongoError`s).
SKIPPED: tuple[type[Exception], ...] = (PyMongoError, *LOGIC_ERRORS)

UNREADABLE = Counter(
    "billing_api_dead_letters_unreadable_total",
    "Records of the dead-letter topic that are not DeadLettered events, skipped by the API.",
)
NOT_STORED = Counter(
    "billing_api_dead_letters_not_stored_total",
    "Dead letters the API could not store (a database logic error), logged and skipped.",
)
CONSUMER_UP = Gauge(
    "billing_api_dead_letter_consumer_up",
    "1 while the API's dead-letter consumer runs, 0 while it is starting, retrying or stopped.",
)
START_FAILURES = Counter(
    "billing_api_dead_letter_consumer_start_failures_total",
    "Failed starts of the API's dead-letter consumer (each is retried with back-off).",
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
    (both counted, logged, skipped). A transient MongoDB error is retried until the store
    succeeds; a logic error (`mongo_errors.LOGIC_ERRORS`) skips the record rather than block
    the partition."""
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
    async def attempt() -> bool:
        with mongo_unavailable(f"MongoDB (dead letter {event.event_id})"):
            return await store(db, event)

    try:
        new = await retry_forever(attempt, stop=None, service="api",
                                  what=f"dead letter {event.event_id}",
                                  retry_on=(DependencyUnavailable,))
    except SKIPPED:  # retrying would hold up the partition for good
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
    connects and joins the group in a background task, retried with `Backoff(retry_base,
    retry_cap)` seconds between failed starts, by default `START_RETRY_BASE` and
    `START_RETRY_CAP`, until it runs or `stop()` is called); `stop()`
    ends a start still under way and stops the broker (in-flight records are not
    acknowledged and come again)."""

    def __init__(self, settings: CommonSettings, db: AsyncDatabase[dict[str, Any]], *,
                 retry_base: float | None = None, retry_cap: float | None = None) -> None:
        self.broker = make_broker(settings, name="api.dead-letters")
        subscribe_dead_letters(self.broker, settings, db)
        self.running = False
        self._backoff = Backoff(START_RETRY_BASE if retry_base is None else retry_base,
                                START_RETRY_CAP if retry_cap is None else retry_cap)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start consuming in the background (the API serves on while it retries)."""
        self._task = asyncio.create_task(self._run(), name="api dead-letter consumer")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.broker.start()
            except Exception as exc:
                START_FAILURES.inc()
                delay = self._backoff.next_delay()
                log.warning("the dead-letter consumer did not start (%s: %s); dead letters "
                            "are not listed until it does; trying again in %.1f s",
                            type(exc).__name__, exc, delay)
                with contextlib.suppress(Exception):
                    await self.broker.stop()  # drop the half-made connection
                await wait_or_stop(self._stopping, delay)
                continue
            self.running = True
            CONSUMER_UP.set(1)
            log.info("the dead-letter consumer started")
            return

    async def stop(self) -> None:
        """Stop consuming; safe when never started."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.running = False
        CONSUMER_UP.set(0)
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
    query.update(after_filter(_SORT, before))
    return await db[COLLECTION].find(query).sort(_SORT).limit(limit).to_list()
