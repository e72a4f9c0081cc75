"""The usage collector against the real broker and database: exact totals through duplicates,
late events, invalid input and a replay of the whole topic."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY

from contracts.topics import TOPIC_DEAD_LETTER, TOPIC_USAGE
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.usage_collector.adapters.store import collector_stats
from services.usage_collector.app import run_collector
from services.usage_collector.query import usage_totals
from services.usage_collector.settings import UsageSettings
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

T0 = datetime(2013, 7, 1, 10, 0, tzinfo=UTC)


def usage(
    n: int, *, tenant: str = "acme", qty: str = "1.5", at: datetime = T0, meter: str = "cpu_hours",
    source: str = "test", **data: Any,
) -> tuple[bytes, bytes]:
    """(key, value) of a valid usage event `n` (id `e{n}`)."""
    body = {
        "specversion": "1.0", "id": f"e{n}", "source": source, "type": "billing.usage",
        "subject": tenant, "time": at.isoformat(),
        "data": {"meter": meter, "quantity": qty, "service": "web", **data},
    }
    return tenant.encode(), json.dumps(body).encode()


async def publish(settings: CommonSettings, messages: list[tuple[bytes | None, bytes]]) -> None:
    """Publish (key, value) pairs to the usage topic and wait for the acknowledgements."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(settings.topic(TOPIC_USAGE), v, key=k) for k, v in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def collector(settings: UsageSettings | None = None) -> AsyncIterator[None]:
    """Run the collector in this process until the block ends (then flush, commit, leave)."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_collector(settings or UsageSettings(), stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def wait_consumed(db: Any, total: int, seconds: float = 120) -> dict[str, int]:
    """Poll the collector's stats until `total` messages are accounted for."""

    async def accounted() -> dict[str, int] | None:
        stats = await collector_stats(db)
        return stats if sum(stats.values()) >= total else None

    stats: dict[str, int] = await eventually(
        accounted, what=f"{total} messages accounted for", seconds=seconds
    )
    return stats


async def buckets(db: Any) -> dict[str, tuple[Decimal, int]]:
    """Every stored bucket: _id -> (sum, count)."""
    return {d["_id"]: (d["sum"], d["count"]) async for d in db["usage_aggregates"].find()}


async def test_duplicates_in_a_batch_across_batches_and_after_a_restart_count_once(
    common_settings: CommonSettings, mongo_db: Any
) -> None:
    first = [usage(n, at=T0 + timedelta(minutes=n % 60)) for n in range(100)]
    await publish(common_settings, first + first[:10])  # in one batch
    async with collector():
        await wait_consumed(mongo_db, 110)
        await publish(common_settings, first[10:30])  # a later batch
        await wait_consumed(mongo_db, 130)
    late = usage(1000, at=T0 - timedelta(days=75, minutes=7), qty="4")
    await publish(common_settings, first[30:40] + [late, late])  # after a restart, months late
    async with collector():
        stats = await wait_consumed(mongo_db, 142)
    assert stats == {"aggregated": 101, "duplicates": 41, "dead_lettered": 0}
    stored = await buckets(mongo_db)
    assert stored == {
        "acme|cpu_hours|web|2013-07-01T10": (Decimal("150.0"), 100),
        "acme|cpu_hours|web|2013-04-17T09": (Decimal("4"), 1),
    }
    (total,) = await usage_totals(mongo_db, "acme", T0, T0 + timedelta(hours=1))
    assert (total.quantity, total.events) == (Decimal("150.0"), 100)
    (early,) = await usage_totals(mongo_db, "acme", T0 - timedelta(days=80), T0)
    assert early.quantity == Decimal(4)
    assert early.last_changed is not None and early.last_changed > total.last_changed  # type: ignore[operator]


async def read_dead_letters(settings: CommonSettings, want: int) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        settings.topic(TOPIC_DEAD_LETTER), bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    await consumer.start()
    got: list[dict[str, Any]] = []

    async def arrived() -> bool:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            got.extend(json.loads(r.value) for r in records)
        return len(got) >= want

    try:
        await eventually(arrived, what=f"{want} dead letters", seconds=60)
    finally:
        await consumer.stop()
    return got


def dead_letter_count(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "billing_dead_letters_total", {"service": "usage_collector", "reason": reason}
    )
    return value or 0.0


async def test_each_invalid_event_is_dead_lettered_with_its_reason_while_neighbours_aggregate(
    common_settings: CommonSettings, mongo_db: Any
) -> None:
    bad = {
        "invalid_json": b"{this is not json",
        "validation_error": json.dumps({"specversion": "1.0", "id": "x"}).encode(),
        "negative_quantity": usage(900, qty="-2")[1],
        "non_finite_quantity": usage(901, qty="NaN")[1],
        "missing_subject": usage(902, tenant="")[1],
        "unknown_aggregation": usage(903, meter="tokens", aggregation="median")[1],
        "quantity_out_of_range": usage(904, qty="1e20")[1],
    }
    before = {reason: dead_letter_count(reason) for reason in bad}
    messages: list[tuple[bytes | None, bytes]] = []
    for n, raw in enumerate(bad.values()):
        messages += [usage(2 * n, qty="2"), (b"acme", raw), usage(2 * n + 1, qty="2")]
    await publish(common_settings, messages)
    async with collector():
        stats = await wait_consumed(mongo_db, len(messages))
    assert stats == {"aggregated": 14, "duplicates": 0, "dead_lettered": 7}
    assert await buckets(mongo_db) == {"acme|cpu_hours|web|2013-07-01T10": (Decimal(28), 14)}
    letters = await read_dead_letters(common_settings, 7)
    by_reason = {d["reason"]: d for d in letters}
    assert sorted(by_reason) == sorted(bad)
    for reason, raw in bad.items():
        letter = by_reason[reason]
        assert letter["original"] == raw.decode()
        assert letter["service"] == "usage_collector"
        assert letter["topic"] == common_settings.topic(TOPIC_USAGE)
        assert letter["partition"] >= 0 and letter["offset"] >= 0
        assert dead_letter_count(reason) == before[reason] + 1


async def test_replaying_the_whole_topic_from_offset_zero_changes_no_total(
    common_settings: CommonSettings, mongo_db: Any
) -> None:
    tenants = ["acme", "globex", "initech", "hooli", "umbrella"]
    messages: list[tuple[bytes | None, bytes]] = [
        usage(n, tenant=tenants[n % 5], qty=f"0.{n:03d}", at=T0 + timedelta(minutes=7 * n),
              meter=("cpu_hours", "storage_gb", "bandwidth_gb")[n % 3])
        for n in range(600)
    ]
    messages.append((b"acme", b"not json"))
    await publish(common_settings, messages)
    async with collector():
        await wait_consumed(mongo_db, 601)
    before = await buckets(mongo_db)
    assert sum(count for _, count in before.values()) == 600
    replay = UsageSettings(usage_group="usage-collector-replay")  # a new group starts at 0
    async with collector(replay):
        stats = await wait_consumed(mongo_db, 1202)
    assert stats == {"aggregated": 600, "duplicates": 601, "dead_lettered": 1}
    assert await buckets(mongo_db) == before


def metric(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_freshness_and_documents_written_are_measured_per_aggregated_event(
    common_settings: CommonSettings, mongo_db: Any
) -> None:
    lag = "billing_usage_event_lag_seconds"
    before = {since: metric(f"{lag}_count", {"since": since})
              for since in ("event_time", "publish_time")}
    day, hour = ({"since": "event_time", "le": le} for le in ("86400.0", "3600.0"))
    within = (metric(f"{lag}_bucket", day), metric(f"{lag}_bucket", hour))
    seen_before = metric("billing_usage_documents_written_total",
                         {"collection": "usage_seen_ids"})
    now = datetime.now(UTC)
    events = [usage(n, at=now - timedelta(hours=2)) for n in range(5)]
    await publish(common_settings, events + events[:2])  # two duplicates: not observed
    async with collector():
        await wait_consumed(mongo_db, 7)
    counts = {since: metric(f"{lag}_count", {"since": since}) - before[since]
              for since in before}
    assert counts == {"event_time": 5, "publish_time": 5}
    within_after = (metric(f"{lag}_bucket", day), metric(f"{lag}_bucket", hour))
    assert (within_after[0] - within[0], within_after[1] - within[1]) == (5, 0), "2 h old"
    assert metric("billing_usage_documents_written_total",
                  {"collection": "usage_seen_ids"}) > seen_before
