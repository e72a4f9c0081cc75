"""Read a whole topic from the beginning (for the demo's report), without a consumer group."""

import json
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.codec import event_type
from services.common.settings import CommonSettings


async def read_topic(
    settings: CommonSettings, topic: str, idle_ms: int = 1500
) -> list[dict[str, Any]]:
    """Every record of contract topic `topic` as {"type", "partition", "offset", "value"} (the
    value parsed as JSON when it is JSON, else text), read until `idle_ms` pass with nothing new."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        name = settings.topic(topic)
        partitions = sorted(consumer.partitions_for_topic(name) or ())
        if not partitions:
            return []
        tps = [TopicPartition(name, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[dict[str, Any]] = []
        while True:
            batch = await consumer.getmany(timeout_ms=idle_ms, max_records=5000)
            if not batch:
                break
            for tp, messages in batch.items():
                for m in messages:
                    raw = (m.value or b"").decode("utf-8", "replace")
                    try:
                        value: Any = json.loads(raw)
                    except ValueError:
                        value = raw
                    records.append(
                        {
                            "type": event_type(list(m.headers or ())),
                            "partition": tp.partition,
                            "offset": m.offset,
                            "value": value,
                        }
                    )
        return records
    finally:
        await consumer.stop()
