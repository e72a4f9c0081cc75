"""Is a consumer group caught up? Measured by fetching, not by ListOffsets.

The embedded broker (tansu) answers ListOffsets with the base offset of the last batch rather
than the high watermark, so `end_offsets` under-reports. Instead, for each partition we seek a
group-less consumer to the group's committed offset and fetch: any record there is unconsumed.
This works the same on Apache Kafka.
"""

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.settings import CommonSettings


async def committed_offsets(
    settings: CommonSettings, group: str, topics: Iterable[str]
) -> dict[TopicPartition, int]:
    """`group`'s committed offset for every partition of the real `topics` (0 if none)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        result: dict[TopicPartition, int] = {}
        for topic in topics:
            for partition in sorted(consumer.partitions_for_topic(topic) or ()):
                tp = TopicPartition(topic, partition)
                result[tp] = await consumer.committed(tp) or 0
        return result
    finally:
        await consumer.stop()


async def pending_partitions(
    settings: CommonSettings, committed: dict[TopicPartition, int], wait_ms: int = 300
) -> set[TopicPartition]:
    """The partitions that hold at least one record at or after their committed offset."""
    if not committed:
        return set()
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=wait_ms,
        max_partition_fetch_bytes=4096,
    )
    await reader.start()
    try:
        reader.assign(list(committed))
        for tp, offset in committed.items():
            reader.seek(tp, offset)
        found: set[TopicPartition] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000 * 3
        while loop.time() < deadline and len(found) < len(committed):
            batch = await reader.getmany(timeout_ms=wait_ms, max_records=100)
            found.update(tp for tp, records in batch.items() if records)
            if not batch:
                break
        return found
    finally:
        await reader.stop()
