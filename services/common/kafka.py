"""Kafka helpers shared by every worker: topic creation and the dead-letter record.

The embedded broker (tansu) rejects idempotent producers, so `enable_idempotence` stays off
unless `BILLING_KAFKA_ENABLE_IDEMPOTENCE` is set for a real cluster.
"""

import asyncio
import base64
import time
from typing import Literal

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from contracts import ALL_TOPICS, DeadLettered
from services.common.errors import DependencyUnavailable
from services.common.settings import CommonSettings


async def ensure_topics(
    settings: CommonSettings, topics: dict[str, int] | None = None, wait_seconds: float = 30.0
) -> None:
    """Create the platform's topics (prefixed) if they do not exist; idempotent.

    `topics` maps contract topic name -> partitions (default `ALL_TOPICS`; a non-zero
    `settings.topic_partitions` overrides every count). Raises `DependencyUnavailable` when the
    brokers do not answer within `wait_seconds`.
    """
    wanted = topics if topics is not None else ALL_TOPICS
    deadline = time.monotonic() + wait_seconds
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            new = [
                NewTopic(settings.topic(name), settings.topic_partitions or parts, 1)
                for name, parts in wanted.items()
                if settings.topic(name) not in existing
            ]
            if new:
                try:
                    await admin.create_topics(new)
                except TopicAlreadyExistsError:
                    pass
            return
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            if time.monotonic() > deadline:
                raise DependencyUnavailable(f"Kafka at {settings.kafka_bootstrap_servers}") from exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


def dead_letter(
    *,
    service: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    detail: str = "",
) -> DeadLettered:
    """Build the `DeadLettered` event for a message that cannot be processed.

    The original bytes are kept as UTF-8 text when they decode, base64 otherwise, so the
    message can be replayed byte for byte.
    """
    raw = value or b""
    encoding: Literal["utf-8", "base64"]
    try:
        original, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        original, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    return DeadLettered(
        service=service,
        topic=topic,
        partition=partition,
        offset=offset,
        key=key.decode("utf-8", "replace") if key is not None else None,
        original=original,
        original_encoding=encoding,
        reason=reason,
        detail=detail[:2000],
    )
