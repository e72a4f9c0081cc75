"""When has the platform settled? Every outbox is drained and every consumer group has consumed
every record of the topics it reads, twice in a row with nothing moving in between. While MongoDB
or the broker does not answer (a restart, a cut link), nothing has settled: the check is made
again until the deadline."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from services.common.lag import committed_offsets, pending_partitions
from services.common.settings import CommonSettings
from services.invoicer import api as invoicer
from services.notifier import api as notifier
from services.payments import api as payments
from services.usage_collector import api as usage

#: Every outbox collection of the platform, as each service's api names them.
OUTBOXES: tuple[str, ...] = (
    usage.OUTBOXES + invoicer.OUTBOXES + payments.OUTBOXES + notifier.OUTBOXES
)
#: Every (contract topic, consumer group) subscription of the platform's workers.
CONSUMES: tuple[tuple[str, str], ...] = (
    usage.CONSUMES + invoicer.CONSUMES + payments.CONSUMES + notifier.CONSUMES
)


async def outbox_backlog(db: AsyncDatabase[dict[str, Any]]) -> int:
    """Unpublished entries over every service's outbox (`OUTBOXES`)."""
    total = 0
    for collection in OUTBOXES:
        total += await db[collection].count_documents({"published": False})
    return total


async def _snapshot(
    settings: CommonSettings, subscriptions: dict[str, list[str]]
) -> tuple[dict[tuple[str, TopicPartition], int], int]:
    offsets: dict[tuple[str, TopicPartition], int] = {}
    pending = 0
    for group, topics in subscriptions.items():
        committed = await committed_offsets(settings, group, [settings.topic(t) for t in topics])
        offsets.update({(group, tp): off for tp, off in committed.items()})
        pending += len(await pending_partitions(settings, committed))
    return offsets, pending


async def wait_until_settled(
    settings: CommonSettings,
    db: AsyncDatabase[dict[str, Any]],
    subscriptions: dict[str, list[str]],
    limit_seconds: float,
    also: Callable[[], Awaitable[bool]] | None = None,
) -> str | None:
    """Wait until settled; returns None, or a sentence saying what had not settled in time.

    `subscriptions` maps real consumer group id -> contract topics it reads.
    """
    deadline = time.monotonic() + limit_seconds
    previous: dict[tuple[str, TopicPartition], int] | None = None
    reason = "nothing checked"
    while time.monotonic() < deadline:
        try:
            backlog_before = await outbox_backlog(db)
            offsets, pending = await _snapshot(settings, subscriptions)
            backlog_after = await outbox_backlog(db)
            extra_ok = await also() if also is not None else True
        except (PyMongoError, KafkaError, OSError, TimeoutError) as exc:
            previous = None
            reason = f"a dependency did not answer ({type(exc).__name__}: {exc})"
            await asyncio.sleep(0.5)
            continue
        quiet = backlog_before == 0 and pending == 0 and backlog_after == 0 and extra_ok
        if quiet and previous == offsets:
            return None
        previous = offsets if quiet else None
        reason = (
            f"outbox backlog {backlog_after}, {pending} partition(s) with unconsumed records"
            + ("" if extra_ok else ", a worker-specific condition not met")
        )
        await asyncio.sleep(0.3)
    return reason


def default_subscriptions(settings: CommonSettings) -> dict[str, list[str]]:
    """Consumer groups of the platform's workers (real ids) and the contract topics each
    reads, from every service's `CONSUMES`."""
    subscriptions: dict[str, list[str]] = {}
    for topic, group in CONSUMES:
        subscriptions.setdefault(settings.group(group), []).append(topic)
    return subscriptions
