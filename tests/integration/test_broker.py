"""The broker speaks real Kafka: a FastStream publisher and a consumer group on 4 partitions."""

import asyncio
import contextlib

import pytest
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings

pytestmark = pytest.mark.integration


class Numbered(BaseModel):
    n: int
    tenant: str


async def consume_until(
    settings: CommonSettings, topic: str, want: int, idle_seconds: float
) -> list[Numbered]:
    """Run a subscriber in group `g` until `want` messages arrived (60 s at most), then keep it
    running `idle_seconds` longer so that anything delivered twice would show up."""
    got: list[Numbered] = []
    enough = asyncio.Event()
    broker = KafkaBroker(settings.kafka_bootstrap_servers, enable_idempotence=False)

    @broker.subscriber(
        topic,
        group_id=settings.group("g"),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
    )
    async def handle(message: Numbered) -> None:
        got.append(message)
        if len(got) >= want:
            enough.set()

    await broker.start()
    try:
        await asyncio.wait_for(enough.wait(), timeout=60)
        more = asyncio.Event()  # never set: waiting on it just keeps the subscriber running
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(more.wait(), timeout=idle_seconds)
    finally:
        await broker.stop()
    return got


async def test_a_consumer_group_receives_1000_keyed_messages_once_across_a_restart(
    common_settings: CommonSettings,
) -> None:
    topic = common_settings.topic("broker-check")
    await ensure_topics(common_settings, {"broker-check": 4})
    async with KafkaBroker(
        common_settings.kafka_bootstrap_servers, enable_idempotence=False
    ) as pub:
        await asyncio.gather(
            *(
                pub.publish(Numbered(n=n, tenant=f"t{n % 13}"), topic, key=f"t{n % 13}".encode())
                for n in range(1000)
            )
        )

    first = await consume_until(common_settings, topic, 1000, idle_seconds=0.5)
    assert sorted(m.n for m in first) == list(range(1000))
    by_tenant: dict[str, list[int]] = {}
    for m in first:
        by_tenant.setdefault(m.tenant, []).append(m.n)
    assert all(ns == sorted(ns) for ns in by_tenant.values()), "a key's order was not kept"

    # The group committed: a restarted subscriber sees nothing again, only new messages.
    async with KafkaBroker(
        common_settings.kafka_bootstrap_servers, enable_idempotence=False
    ) as pub:
        await pub.publish(Numbered(n=1000, tenant="t0"), topic, key=b"t0")
    second = await consume_until(common_settings, topic, 1, idle_seconds=2.0)
    assert [m.n for m in second] == [1000]
