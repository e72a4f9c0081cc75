"""What every Kafka worker shares: the broker, publishing with event-type headers (a broker
that does not answer raises `DependencyUnavailable`), and the serve loop (ops endpoint,
broker, background tasks, graceful stop). Subscribers and dead letters: `consumer.py`,
`deadletter.py`.

Services use FastStream's `KafkaBroker` for subscribers and publishing; `serve_worker` runs
it beside the `/metrics`, `/healthz` and `/readyz` endpoint until SIGTERM.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from contracts.base import Contract
from services.common.codec import encode
from services.common.deadletter import PublishRaw
from services.common.errors import DependencyUnavailable
from services.common.kafka import ensure_topics
from services.common.ops import OpsServer, ops_app
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)


def make_broker(settings: CommonSettings, **options: Any) -> KafkaBroker:
    """A FastStream Kafka broker for `settings` (idempotent producer off unless configured:
    the embedded tansu broker rejects it)."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        enable_idempotence=settings.kafka_enable_idempotence,
        logger=logging.getLogger(f"faststream.{options.pop('name', 'broker')}"),
        **options,
    )


async def publish_event(
    broker: KafkaBroker, settings: CommonSettings, event: Contract, topic: str, key: str
) -> None:
    """Publish `event` to contract topic `topic` (prefixed by settings) keyed by `key`.
    Raises `DependencyUnavailable` when the broker does not answer."""
    body, headers = encode(event)
    await publish_raw(broker, settings.topic(topic), key.encode(), body, headers)


async def publish_raw(
    broker: KafkaBroker, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    """Publish pre-encoded bytes to a real topic name (the outbox relay's `Publish`, the
    runtime's dead letters). Raises `DependencyUnavailable` when the broker does not answer."""
    try:
        await broker.publish(value, topic, key=key, headers={k: v.decode() for k, v in headers})
    except KafkaError as exc:
        raise DependencyUnavailable(f"Kafka: publishing to {topic} failed: {exc!r}") from exc


def raw_publisher(broker: KafkaBroker) -> PublishRaw:
    """`publish_raw` bound to `broker`: what `subscribe` and the dead-letter path take."""

    async def publish(
        topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        await publish_raw(broker, topic, key, value, headers)

    return publish


async def mongo_answers(client: AsyncMongoClient[dict[str, Any]]) -> bool:
    """True when MongoDB answers `ping` (a readiness check; never raises)."""
    try:
        await client.admin.command("ping")
    except Exception:
        return False
    return True


def mongo_and_kafka_ready(
    client: AsyncMongoClient[dict[str, Any]], broker: KafkaBroker
) -> Callable[[], Awaitable[dict[str, bool]]]:
    """A readiness check: MongoDB answers `ping` and the broker is connected."""

    async def check() -> dict[str, bool]:
        try:
            kafka = bool(await broker.ping(timeout=2))
        except Exception:
            kafka = False
        return {"mongodb": await mongo_answers(client), "kafka": kafka}

    return check


async def serve_worker(
    settings: CommonSettings,
    stop: asyncio.Event,
    *,
    broker: KafkaBroker,
    client: AsyncMongoClient[dict[str, Any]],
    on_start: Callable[[], Awaitable[None]] | None = None,
    tasks: Sequence[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = (),
) -> None:
    """Run a worker until `stop` is set.

    Order: create topics, `on_start` (indexes), ops endpoint, broker (subscribers join their
    groups), background `tasks(stop)` (outbox relay, schedules). On stop: the broker stops first
    (in-flight handlers finish, offsets commit, the group is left), then tasks get until
    `settings.shutdown_timeout_seconds` to finish, then the ops endpoint and client close.
    """
    await ensure_topics(settings)
    if on_start is not None:
        await on_start()
    ops = OpsServer(
        ops_app(mongo_and_kafka_ready(client, broker)), settings.ops_host, settings.ops_port
    )
    await ops.start()
    await broker.start()
    task_stop = asyncio.Event()
    running: list[asyncio.Task[None]] = [asyncio.create_task(t(task_stop)) for t in tasks]
    try:
        await stop.wait()
    finally:
        await broker.stop()
        task_stop.set()
        if running:
            done, pending = await asyncio.wait(running, timeout=settings.shutdown_timeout_seconds)
            for t in pending:
                t.cancel()
            for t in done:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    t.result()
        await ops.stop()
        await client.close()
