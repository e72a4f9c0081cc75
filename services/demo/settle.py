"""When has the platform settled? Every outbox is drained and every consumer group has consumed
every record of the topics it reads, twice in a row with nothing moving in between."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition
from pymongo.asynchronous.database import AsyncDatabase

from contracts import (
    TOPIC_INVOICE,
    TOPIC_PAYMENT,
    TOPIC_STRIPE_EVENTS,
    TOPIC_TENANT,
    TOPIC_TENANT_CONFIG,
    TOPIC_USAGE,
)
from services.common.lag import committed_offsets, pending_partitions
from services.common.outbox import outbox_collection
from services.common.settings import CommonSettings

OUTBOX_SERVICES = ("invoicer", "payments", "notifier")


async def outbox_backlog(db: AsyncDatabase[dict[str, Any]]) -> int:
    """Unpublished entries over every service's outbox."""
    total = 0
    for service in OUTBOX_SERVICES:
        total += await db[outbox_collection(service)].count_documents({"published": False})
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
        backlog_before = await outbox_backlog(db)
        offsets, pending = await _snapshot(settings, subscriptions)
        backlog_after = await outbox_backlog(db)
        extra_ok = await also() if also is not None else True
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
    """Consumer groups of the platform's workers and the topics each reads."""
    return {
        settings.group("usage-collector"): [TOPIC_USAGE],
        settings.group("invoicer"): [TOPIC_TENANT_CONFIG, TOPIC_PAYMENT],
        settings.group("payments"): [TOPIC_INVOICE, TOPIC_STRIPE_EVENTS],
        settings.group("notifier"): [TOPIC_INVOICE, TOPIC_TENANT],
    }
