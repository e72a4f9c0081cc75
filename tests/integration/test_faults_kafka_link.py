"""The stack's broker link (`services.devstack.link`): every client reaches the broker through
it, and `cut_kafka` breaks every connection for a while, then the link forwards again."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.common.settings import CommonSettings
from services.devstack.api import EmbeddedStack
from services.devstack.link import Link, cut_link
from tests.support.fault_stack import logs_of, own_stack, worker_env
from tests.support.fault_workload import (
    done,
    every_subscription_past,
    publish_round,
    running_workers,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
#: How long the broker link stays cut in the worker test.
CUT_SECONDS = 30.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with own_stack(tmp_path_factory.mktemp("faults-link")) as started:
        yield started


@pytest.fixture
async def echo_link() -> AsyncIterator[tuple[int, int]]:
    """A link in this process in front of an echo server: (link port, control port)."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    target = await asyncio.start_server(echo, "127.0.0.1", 0)
    link = Link("127.0.0.1", target.sockets[0].getsockname()[1])
    front = await asyncio.start_server(link.serve_client, "127.0.0.1", 0)
    control = await asyncio.start_server(link.serve_control, "127.0.0.1", 0)
    ports = (front.sockets[0].getsockname()[1], control.sockets[0].getsockname()[1])
    async with target, front, control:
        yield ports
        link.cut(0)


async def roundtrip(port: int, data: bytes = b"ping") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(1024), 5)
    finally:
        writer.close()


async def test_a_cut_aborts_open_connections_refuses_new_ones_and_then_ends(
    echo_link: tuple[int, int],
) -> None:
    port, control = echo_link
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"before")
    assert await reader.read(1024) == b"before"

    started = time.monotonic()
    assert await asyncio.to_thread(cut_link, "127.0.0.1", control, 2.0) == 1
    with pytest.raises(ConnectionError):  # the open connection was reset...
        writer.write(b"during")
        await writer.drain()
        if not await reader.read(1024):
            raise ConnectionResetError("closed")
    writer.close()
    with pytest.raises(ConnectionError):  # ...and a new one is not served during the cut
        if not await roundtrip(port):
            raise ConnectionResetError("closed")
    assert time.monotonic() - started < 2.0, "too slow to observe the cut"

    async def forwards() -> bool:
        try:
            return await roundtrip(port, b"after") == b"after"
        except OSError:
            return False

    await eventually(forwards, what="the link forwarding after the cut", seconds=10)
    assert time.monotonic() - started >= 2.0


async def test_the_control_port_refuses_anything_but_a_cut(
    echo_link: tuple[int, int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", echo_link[1])
    writer.write(b"drop everything\n")
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"error")
    writer.close()
    assert await roundtrip(echo_link[0]) == b"ping"  # nothing was cut


def test_the_stack_points_every_client_at_its_link(stack: EmbeddedStack) -> None:
    state = stack.load()
    link, broker = state.components["kafka-link"], state.components["kafka"]
    env = state.env(stack.directory)
    assert env["BILLING_KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{link.port}"
    assert f"tcp://127.0.0.1:{link.port}" in broker.argv  # advertised in metadata
    assert link.control_port not in (0, link.port, broker.port)


async def test_clients_lose_the_broker_during_a_cut_and_find_it_again_afterwards(
    stack: EmbeddedStack,
) -> None:
    env = worker_env(stack)
    servers, topic = env["BILLING_KAFKA_BOOTSTRAP_SERVERS"], env["BILLING_TOPIC_PREFIX"] + "link"
    producer = AIOKafkaProducer(bootstrap_servers=servers)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=servers, group_id=topic, auto_offset_reset="earliest"
    )
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(topic, b"before", key=b"k")
        assert (await asyncio.wait_for(consumer.getone(), 60)).value == b"before"
        started = time.monotonic()
        await asyncio.to_thread(stack.cut_kafka, 3.0)
        await asyncio.wait_for(producer.send_and_wait(topic, b"after", key=b"k"), 60)
        assert time.monotonic() - started >= 3.0, "the message went through during the cut"
        assert (await asyncio.wait_for(consumer.getone(), 60)).value == b"after"
    finally:
        await producer.stop()
        await consumer.stop()


async def broker_answers(settings: CommonSettings) -> bool:
    """True once a new client can reach the broker through the link."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        await producer.start()
    except KafkaError:
        return False
    finally:
        await producer.stop()
    return True


async def test_every_worker_kind_rides_out_a_30_s_broker_cut_without_a_restart(
    stack: EmbeddedStack, tmp_path: Path,
) -> None:
    async with running_workers(stack, tmp_path / "logs") as run:
        settings, env, workers, all_done = run.settings, run.env, run.workers, run.all_done
        warm = await publish_round(settings, env, "warm")
        await eventually(lambda: all_done(warm), what="every worker's first round", seconds=120)
        await asyncio.to_thread(stack.cut_kafka, CUT_SECONDS)
        cut_at = time.monotonic()
        await eventually(lambda: broker_answers(settings), what="the link back", seconds=90)
        assert time.monotonic() - cut_at >= CUT_SECONDS - 1
        after = await publish_round(settings, env, "after-cut")

        try:
            await eventually(lambda: all_done(after), what="the round after the cut", seconds=120)
            await every_subscription_past(settings, after.sent)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n{await done(run.db, after)}\n{logs_of(workers)}") from exc
        assert not workers.dead(), logs_of(workers)
