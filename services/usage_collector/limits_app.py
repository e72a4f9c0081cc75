"""The usage limits projection of the collector worker: `UsageLimitsChanged` from the tenant
topic in its own consumer group (`LIMITS_GROUP`), on the common consumer runtime
(`services.common.consumer`): a message that fails its contract is dead-lettered with the
reason and counted, a MongoDB outage is retried in place, other event types of the topic
are ignored. Applying is idempotent and an older `version` changes nothing
(adapters/limits.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from contracts.base import utc_now
from contracts.plans import UsageLimitsChanged
from contracts.topics import TOPIC_TENANT
from services.common.consumer import subscribe
from services.common.deadletter import MessageSource
from services.common.settings import CommonSettings
from services.common.worker import raw_publisher
from services.usage_collector.adapters.limits_update import apply_limits
from services.usage_collector.adapters.metrics import LIMITS_UPDATES, THRESHOLD_EVENTS
from services.usage_collector.names import LIMITS_GROUP, SERVICE


async def on_limits_changed(
    db: AsyncDatabase[dict[str, Any]], event: UsageLimitsChanged
) -> str:
    """Apply `event` (one transaction); `applied` or `stale`."""
    crossed = await apply_limits(db, event, utc_now())
    if crossed is None:
        LIMITS_UPDATES.labels(outcome="stale").inc()
        return "stale"
    LIMITS_UPDATES.labels(outcome="applied").inc()
    for threshold in crossed:
        THRESHOLD_EVENTS.labels(threshold=str(threshold)).inc()
    return "applied"


def subscribe_limits(
    broker: KafkaBroker, settings: CommonSettings, db: AsyncDatabase[dict[str, Any]],
    stop: asyncio.Event | None,
) -> None:
    """Subscribe the limits projection to the tenant topic on `broker` (before it starts)."""
    async def handle(event: UsageLimitsChanged, source: MessageSource) -> str:
        return await on_limits_changed(db, event)

    subscribe(broker, settings, service=SERVICE, topic=TOPIC_TENANT, group=LIMITS_GROUP,
              handlers={UsageLimitsChanged: handle}, publish=raw_publisher(broker), stop=stop)
