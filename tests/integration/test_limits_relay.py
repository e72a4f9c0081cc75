"""The usage alerts topic is at-least-once: two collectors' relays of the same outbox may both
publish an entry, always with its one event id per (tenant, meter, period, threshold), which
consumers dedupe by (docs/limits.md#threshold-alerts)."""

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.plans import (
    UsageThresholdReached,
    threshold_event_id,
)
from contracts.topics import TOPIC_USAGE_ALERTS
from services.common.codec import Headers
from services.common.outbox import OutboxRelay
from services.usage_collector.adapters.limits import OUTBOX
from services.usage_collector.adapters.limits_update import apply_limits
from services.usage_collector.adapters.store import MongoUsageStore, ensure_indexes
from tests.integration.limits_support import batch, event, limits_changed

pytestmark = pytest.mark.integration

START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)


async def test_two_relays_may_publish_an_alert_twice_always_with_its_one_event_id(
    mongo_db: Any,
) -> None:
    await ensure_indexes(mongo_db)
    await apply_limits(mongo_db, limits_changed(1, (START, END), limit="10", hard=False), START)
    await MongoUsageStore(mongo_db).apply(batch(event(1, "12")), [])

    published: list[tuple[str, str, UsageThresholdReached]] = []
    race = [True]

    def relay(name: str, other: OutboxRelay | None) -> OutboxRelay:
        async def publish(topic: str, key: bytes, value: bytes, headers: Headers) -> None:
            if other is not None and race:  # once: the other collector's round runs
                race.clear()  # between this round's read and its marking
                await other.relay_once()
            published.append((name, topic, UsageThresholdReached.model_validate_json(value)))

        return OutboxRelay(mongo_db, OUTBOX, publish, lambda t: t, service="test",
                           batch_size=1)

    second = relay("second", None)
    first = relay("first", second)
    assert await first.relay_once() == 1
    assert await first.drain() + await second.drain() == 1

    ids = [threshold_event_id("acme", "cpu_hours", "2026-03-01T00:00:00Z", t)
           for t in (80, 100)]
    assert [(name, e.event_id) for name, _, e in published] == [
        ("second", ids[0]), ("first", ids[0]), ("first", ids[1])]
    assert published[0][2] == published[1][2]  # the same event, published twice
    assert {topic for _, topic, _ in published} == {TOPIC_USAGE_ALERTS}
    assert await mongo_db[OUTBOX].count_documents({"published": False}) == 0
