"""The outbox relay's metrics, scraped over HTTP from a worker's ops endpoint: while the broker
refuses to publish, `billing_outbox_backlog` rises with every entry written; once publishing
works again it falls to 0 and `billing_outbox_published_total` rises by exactly the number of
entries, which are then on the topic. The relay is built as every worker builds it
(`services.common.relay.outbox_relay`) on the real broker and MongoDB."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from prometheus_client.parser import text_string_to_metric_families

from contracts import TOPIC_NOTIFICATION, NotificationSent
from contracts.base import Event
from services.common.kafka import ensure_topics
from services.common.ops import OpsServer, ops_app
from services.common.outbox import add_to_outbox, ensure_outbox_indexes, outbox_collection
from services.common.relay import outbox_relay
from services.common.settings import CommonSettings
from services.common.worker import make_broker, raw_publisher
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

DEADLINE_SECONDS = 60.0
FIRST, SECOND = 5, 7


class BrokerRefusing(Exception):
    """What the test double of `Publish` raises while publishing is held back."""


@pytest.fixture
async def broker(common_settings: CommonSettings) -> AsyncIterator[KafkaBroker]:
    await ensure_topics(common_settings)
    async with make_broker(common_settings, name="outbox-metrics-test") as started:
        yield started


@pytest.fixture
async def metrics_url() -> AsyncIterator[str]:
    async def ready() -> dict[str, bool]:
        return {}

    server = OpsServer(ops_app(ready), "127.0.0.1", 0)
    port = await server.start()
    yield f"http://127.0.0.1:{port}/metrics"
    await server.stop()


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `/metrics`: (name, sorted labels) -> value."""
    async with httpx.AsyncClient() as client:
        response = await client.get(url, timeout=10)
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def notification(n: int) -> NotificationSent:
    return NotificationSent(
        occurred_at=datetime(2024, 3, 1, tzinfo=UTC), notification_id=f"n-{n}",
        kind="invoice_issued", tenant_id="acme", invoice_id=f"inv-{n}",
        invoice_number=f"ACME-{n:04d}", recipient="billing@acme.example",
        subject=f"Invoice {n}", message_id=f"<{n}@billing.example>",
    )


async def topic_count(settings: CommonSettings, want: int) -> int:
    """How many records are on the notification topic, once at least `want` arrived."""
    consumer = AIOKafkaConsumer(
        settings.topic(TOPIC_NOTIFICATION), bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    await consumer.start()
    seen: set[str] = set()

    async def arrived() -> bool:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            seen.update((r.key or b"").decode() + "/" + str(r.offset) for r in records)
        return len(seen) >= want

    try:
        await eventually(arrived, what=f"{want} records on the topic", seconds=DEADLINE_SECONDS)
    finally:
        await consumer.stop()
    return len(seen)


async def test_the_backlog_rises_while_the_broker_refuses_and_falls_to_zero_once_it_publishes(
    common_settings: CommonSettings, mongo_db: Any, broker: KafkaBroker, metrics_url: str,
) -> None:
    service = f"relay-test-{uuid.uuid4().hex[:8]}"
    collection = outbox_collection(service)
    labels = (("outbox", collection), ("service", service))
    backlog_key = ("billing_outbox_backlog", labels)
    published_key = ("billing_outbox_published_total", labels)
    failures_key = ("billing_background_failures_total", (("task", "outbox-relay"),))
    await ensure_outbox_indexes(mongo_db, collection)

    refusing = True
    real_publish = raw_publisher(broker)

    async def publish(topic: str, key: bytes, value: bytes, headers: Any) -> None:
        if refusing:
            raise BrokerRefusing("broker refuses writes")
        await real_publish(topic, key, value, headers)

    relay = outbox_relay(broker, common_settings, mongo_db, collection, service, publish=publish)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop, interval=0.05))
    try:
        failures_before = (await scrape(metrics_url)).get(failures_key, 0.0)

        async def backlog_is(value: float) -> dict[Any, float] | None:
            samples = await scrape(metrics_url)
            return samples if samples.get(backlog_key) == value else None

        written: list[tuple[Event, str, str]] = [
            (notification(n), TOPIC_NOTIFICATION, "acme") for n in range(FIRST + SECOND)
        ]
        await add_to_outbox(mongo_db, collection, written[:FIRST], None)
        first = await eventually(lambda: backlog_is(FIRST), what=f"backlog {FIRST}",
                                 seconds=DEADLINE_SECONDS)
        await add_to_outbox(mongo_db, collection, written[FIRST:], None)
        risen = await eventually(lambda: backlog_is(FIRST + SECOND),
                                 what=f"backlog {FIRST + SECOND}", seconds=DEADLINE_SECONDS)
        assert first.get(published_key, 0.0) == 0.0
        assert risen.get(published_key, 0.0) == 0.0
        assert risen[failures_key] > failures_before  # each refused round is counted

        refusing = False
        drained = await eventually(lambda: backlog_is(0), what="backlog 0",
                                   seconds=DEADLINE_SECONDS)
        assert drained[published_key] == FIRST + SECOND
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE_SECONDS)
    assert await mongo_db[collection].count_documents({"published": False}) == 0
    assert await topic_count(common_settings, FIRST + SECOND) == FIRST + SECOND
    assert (await scrape(metrics_url))[published_key] == FIRST + SECOND
