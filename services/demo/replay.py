"""Replay from offset 0: every consumer group of the platform is moved back to the start of
every partition of the topics it reads, so fresh workers consume everything again. Effects are
idempotent per event id (docs/design.md), so a replay must add no invoice, charge or email.

A group may instead be moved back by a bounded number of records per partition (`tails`): the
usage topic holds one record per usage event, and replaying all of it costs as much as the
import (docs/operations.md, the demo's replay)."""

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from services.common.settings import CommonSettings


async def rewind_groups(
    settings: CommonSettings,
    subscriptions: dict[str, list[str]],
    tails: dict[str, int] | None = None,
) -> dict[str, dict[str, int]]:
    """Commit a new position for every partition of each group's topics (`subscriptions`:
    real group id -> contract topics): offset 0, or for a group in `tails` (group -> records)
    the partition's end minus that many records (at least 0; the embedded broker reports the
    end as the last batch's first offset, so at least that many are replayed).

    The groups must have no live member (stop the workers first), else the broker refuses the
    commit (`CommitFailedError`). Returns group -> {"partitions", "records"} where `records`
    is how many records lie between the new positions and the reported ends."""
    rewound: dict[str, dict[str, int]] = {}
    for group, topics in subscriptions.items():
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            partitions = [
                TopicPartition(settings.topic(topic), p)
                for topic in topics
                for p in sorted(consumer.partitions_for_topic(settings.topic(topic)) or ())
            ]
            ends = await consumer.end_offsets(partitions) if partitions else {}
            tail = (tails or {}).get(group)
            start = {tp: 0 if tail is None else max(0, ends[tp] - tail) for tp in partitions}
            if partitions:
                consumer.assign(partitions)
                await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in start.items()})
            rewound[group] = {
                "partitions": len(partitions),
                "records": sum(ends[tp] - start[tp] for tp in partitions),
            }
        finally:
            await consumer.stop()
    return rewound
