"""Transactional outbox (docs/design.md#reliability).

A state change and the events that follow it are written in one MongoDB transaction: the
events go to the `outbox` collection, keyed by `event_id`. `OutboxRelay` publishes unpublished
entries to Kafka in write order and then marks them published. A crash between publishing and
marking republishes the same events with the same `event_id`, which every consumer recognises
(idempotent per event id): nothing is lost, and no duplicate is unrecognisable.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from contracts.base import Event, utc_now
from services.common.codec import Headers, headers_for
from services.common.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISHED
from services.common.periodic import run_every

#: publish(topic, key, value, headers) -> awaitable completing when the broker acknowledged it.
Publish = Callable[[str, bytes, bytes, Headers], Awaitable[Any]]


def outbox_collection(service: str) -> str:
    """Each service owns its outbox: `<service>_outbox`."""
    return f"{service}_outbox"


async def ensure_outbox_indexes(db: AsyncDatabase[dict[str, Any]], collection: str) -> None:
    """Index unpublished entries by write order; idempotent."""
    await db[collection].create_index([("published", ASCENDING), ("seq", ASCENDING)])


def outbox_entry(event: Event, topic: str, key: str) -> dict[str, Any]:
    """The outbox document for `event` bound for contract topic `topic` with message key `key`."""
    return {
        "_id": event.event_id,
        "topic": topic,
        "key": key,
        "type": type(event).__name__,
        "payload": event.model_dump_json(),
        "seq": time.time_ns(),
        "created_at": utc_now(),
        "published": False,
    }


async def add_to_outbox(
    db: AsyncDatabase[dict[str, Any]],
    collection: str,
    events: list[tuple[Event, str, str]],
    session: AsyncClientSession | None,
) -> None:
    """Write `(event, contract topic, key)` entries inside the caller's transaction `session`."""
    if events:
        await db[collection].insert_many(
            [outbox_entry(e, topic, key) for e, topic, key in events], session=session
        )


class OutboxRelay:
    """Publishes outbox entries to Kafka, oldest first, then marks them published.

    At-least-once: an entry is marked only after the broker acknowledged it. Topic names are
    passed through `topic_name` (the settings' prefix). Each round updates
    `billing_outbox_backlog{service, outbox}` (entries waiting when the round started, 0 after
    a round that found none) and `billing_outbox_published_total{service, outbox}` (entries
    marked published). Workers and commands build it with `services.common.relay`.
    """

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        collection: str,
        publish: Publish,
        topic_name: Callable[[str], str],
        *,
        service: str,
        batch_size: int = 500,
    ) -> None:
        self._coll = db[collection]
        self._publish = publish
        self._topic_name = topic_name
        self._batch_size = batch_size
        self._backlog = OUTBOX_BACKLOG.labels(service=service, outbox=collection)
        self._published = OUTBOX_PUBLISHED.labels(service=service, outbox=collection)
        self.published_total = 0

    async def backlog(self) -> int:
        """How many entries wait to be published (uses the `(published, seq)` index)."""
        return await self._coll.count_documents({"published": False})

    async def relay_once(self) -> int:
        """Publish one batch of pending entries; returns how many were published.

        Raises what `publish` or MongoDB raise; the entries stay unpublished and are tried
        again next round (the backlog gauge already counts them).
        """
        cursor = self._coll.find({"published": False}).sort("seq", ASCENDING)
        entries = await cursor.limit(self._batch_size).to_list()
        if not entries:
            self._backlog.set(0)
            return 0
        waiting = await self.backlog()
        self._backlog.set(waiting)
        await asyncio.gather(
            *(
                self._publish(
                    self._topic_name(e["topic"]),
                    e["key"].encode(),
                    e["payload"].encode(),
                    headers_for(e["type"]),
                )
                for e in entries
            )
        )
        await self._coll.update_many(
            {"_id": {"$in": [e["_id"] for e in entries]}},
            {"$set": {"published": True, "published_at": utc_now()}},
        )
        self._published.inc(len(entries))
        self._backlog.set(max(0, waiting - len(entries)))
        self.published_total += len(entries)
        return len(entries)

    async def drain(self) -> int:
        """Publish every pending entry now (one-off commands); returns how many."""
        total = 0
        while n := await self.relay_once():
            total += n
        return total

    async def run(self, stop: asyncio.Event, interval: float = 0.2) -> None:
        """Relay until `stop` is set, polling every `interval` seconds when idle (failures
        logged and counted as task `outbox-relay`), then one last round."""
        await run_every(interval, self.relay_once, stop, "outbox-relay")
        await self.relay_once()
