"""Replay from offset 0: every worker is started again in new consumer groups (a new
`BILLING_GROUP_PREFIX`), which begin at the first record of every partition, so the fresh
workers consume every topic again. Effects are idempotent per event id (docs/design.md), so a
replay must add no invoice, charge or email.

New groups rather than the old ones moved back: committing offsets for a group needs the group
to be empty, and a group that lost members to SIGKILL and to a broken broker link may still be
waiting for them on the broker; a new group has no such history."""

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.settings import CommonSettings

#: The group prefix of the replay's workers.
REPLAY_GROUP_PREFIX = "replay."


async def replay_sizes(
    settings: CommonSettings, subscriptions: dict[str, list[str]]
) -> dict[str, dict[str, int]]:
    """For each group (`subscriptions`: real group id -> contract topics) how many partitions
    its topics have and how many records they hold (the broker's reported ends; the embedded
    broker reports the last batch's first offset, so a few records more are consumed)."""
    probe = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await probe.start()
    try:
        sizes: dict[str, dict[str, int]] = {}
        for group, topics in subscriptions.items():
            partitions = [
                TopicPartition(settings.topic(topic), p)
                for topic in topics
                for p in sorted(probe.partitions_for_topic(settings.topic(topic)) or ())
            ]
            ends = await probe.end_offsets(partitions) if partitions else {}
            sizes[group] = {"partitions": len(partitions), "records": sum(ends.values())}
        return sizes
    finally:
        await probe.stop()
