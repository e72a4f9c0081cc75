"""The collector worker's limits projection and alerts through Kafka: `UsageLimitsChanged`
applied from the tenant topic, bad ones dead-lettered without blocking, one
`UsageThresholdReached` per crossing on billing.usage-alerts.v1 even when a second consumer
group replays every usage event from the start."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import TOPIC_DEAD_LETTER, TOPIC_TENANT, TOPIC_USAGE, TOPIC_USAGE_ALERTS
from contracts.plans import PlanLimit, UsageLimitsChanged, UsageLimitWindow
from services.common.codec import headers_for
from services.common.worker import make_broker, publish_event
from services.usage_collector.api import entitlement
from services.usage_collector.app import run_collector
from services.usage_collector.names import OUTBOX
from services.usage_collector.settings import UsageSettings
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
Record = dict[str, Any]


async def collect(settings: UsageSettings, topic: str, done: Callable[[list[Record]], bool],
                  seconds: float = 60.0) -> list[Record]:
    """Read `topic` from the start until `done(records)` or the deadline."""
    consumer = AIOKafkaConsumer(settings.topic(topic), auto_offset_reset="earliest",
                                bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    records: list[Record] = []
    try:
        deadline = time.monotonic() + seconds
        while not done(records) and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(json.loads(m.value) for m in msgs)
    finally:
        await consumer.stop()
    return records


async def read_to_end(settings: UsageSettings, topic: str) -> list[Record]:
    """Every record of `topic` up to its current end offsets."""
    name = settings.topic(topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    records: list[Record] = []
    try:
        await consumer.topics()  # metadata
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        assert partitions, f"{name} has no partitions"
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + 30
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            assert time.monotonic() < deadline, "topic not read to its end in 30 s"
            for msgs in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(json.loads(m.value) for m in msgs)
    finally:
        await consumer.stop()
    return records


@asynccontextmanager
async def collector(settings: UsageSettings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_collector(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def usage(n: int, qty: str, at: datetime) -> bytes:
    return json.dumps({
        "specversion": "1.0", "id": f"u{n}", "source": "jobs", "type": "billing.usage",
        "subject": "acme", "time": at.isoformat(),
        "data": {"meter": "cpu_hours", "quantity": qty, "service": "jobs"},
    }).encode()


async def test_limits_arrive_bad_ones_are_dead_lettered_and_each_threshold_is_published_once(
    billing_env: dict[str, str], mongo_db: Any,
) -> None:
    settings = UsageSettings(usage_linger_seconds=0.01, usage_min_batch_events=1)
    now = datetime.now(UTC)
    window = UsageLimitWindow(period_start=now - timedelta(days=1),
                              period_end=now + timedelta(days=29),
                              limits=(PlanLimit(meter="cpu_hours", limit=Decimal(10)),))
    good = UsageLimitsChanged(tenant_id="acme", version=1, windows=(window,))
    bad = json.loads(good.model_dump_json())
    bad["windows"][0]["period_end"] = bad["windows"][0]["period_start"]
    headers = {k: v.decode() for k, v in headers_for("UsageLimitsChanged")}
    async with make_broker(settings) as broker:
        await broker.publish(json.dumps(bad).encode(), settings.topic(TOPIC_TENANT),
                             key=b"acme", headers=headers)
        await broker.publish(b"{not json", settings.topic(TOPIC_TENANT), key=b"acme",
                             headers=headers)
        await publish_event(broker, settings, good, TOPIC_TENANT, "acme")
        for n, qty in enumerate(("5", "3.5", "1", "0.5", "2")):
            await broker.publish(usage(n, qty, now), settings.topic(TOPIC_USAGE), key=b"acme")

    async with collector(settings):
        letters = await collect(settings, TOPIC_DEAD_LETTER, lambda r: len(r) >= 2)
        assert sorted(r["reason"] for r in letters) == ["invalid_json", "validation_error"]
        assert {r["service"] for r in letters} == {"usage_collector"}

        async def counted() -> bool:
            got = await entitlement(mongo_db, "acme", "cpu_hours", now)
            return got is not None and got.used == Decimal(12)

        await eventually(counted, what="all usage counted against the limit")
        alerts = await collect(settings, TOPIC_USAGE_ALERTS, lambda r: len(r) >= 2)
    # a second group replays every usage event from the first offset
    replay = UsageSettings(usage_group="usage-replay", usage_linger_seconds=0.01,
                           usage_min_batch_events=1)
    async with collector(replay):
        async def replayed() -> bool:
            stats = await mongo_db["usage_stats"].find({}).to_list()
            return sum(int(s.get("duplicates", 0)) for s in stats) >= 5

        await eventually(replayed, what="the replay consumed every event again")

        async def relayed() -> bool:
            return await mongo_db[OUTBOX].count_documents({"published": False}) == 0

        await eventually(relayed, what="the alerts outbox relayed")
    alerts = await read_to_end(settings, TOPIC_USAGE_ALERTS)
    assert sorted((a["threshold_percent"], a["limit"]) for a in alerts) == [
        (80, "10"), (100, "10")]
    assert len({a["event_id"] for a in alerts}) == 2


async def test_two_collectors_in_one_group_publish_each_threshold_once(
    billing_env: dict[str, str], mongo_db: Any,
) -> None:
    settings = UsageSettings(usage_linger_seconds=0.01, usage_min_batch_events=1,
                             usage_session_timeout_seconds=6)
    now = datetime.now(UTC)
    window = UsageLimitWindow(period_start=now - timedelta(days=1),
                              period_end=now + timedelta(days=29),
                              limits=(PlanLimit(meter="cpu_hours", limit=Decimal(10)),))
    tenants = [f"t{i}" for i in range(6)]

    def usage_of(tenant: str, n: int) -> bytes:
        return usage(n, "2", now).replace(b'"acme"', json.dumps(tenant).encode()).replace(
            f'"u{n}"'.encode(), f'"{tenant}-{n}"'.encode())

    async def publish_usage(numbers: range) -> None:
        async with make_broker(settings) as broker:
            for tenant in tenants:
                for n in numbers:
                    await broker.publish(usage_of(tenant, n), settings.topic(TOPIC_USAGE),
                                         key=tenant.encode())

    async with make_broker(settings) as broker:
        for tenant in tenants:
            await publish_event(broker, settings, UsageLimitsChanged(
                tenant_id=tenant, version=1, windows=(window,)), TOPIC_TENANT, tenant)

    async def all_used(amount: int) -> bool:
        for tenant in tenants:
            got = await entitlement(mongo_db, tenant, "cpu_hours", now)
            if got is None or got.used != Decimal(amount):
                return False
        return True

    async with collector(settings):
        await publish_usage(range(4))  # 8 of 10: the 80 % threshold
        await eventually(lambda: all_used(8), what="8 used by every tenant")
        async with collector(settings):  # a second member joins: partitions move
            await publish_usage(range(4, 6))  # 12 of 10: the 100 % threshold
            await eventually(lambda: all_used(12), what="12 used by every tenant")

            async def relayed() -> bool:
                return await mongo_db[OUTBOX].count_documents({"published": False}) == 0

            await eventually(relayed, what="the alerts outbox relayed")
    alerts = await read_to_end(settings, TOPIC_USAGE_ALERTS)
    assert sorted((a["tenant_id"], a["threshold_percent"]) for a in alerts) == sorted(
        (t, p) for t in tenants for p in (80, 100))
