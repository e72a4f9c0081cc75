"""The consumer runtime's error policy on FastStream's in-memory `TestKafkaBroker`: the handler
gets the contract model its `event-type` header names; permanent and validation errors are
dead-lettered with their reason, retryable ones retried in place (the event loop stays free),
anything else dead-lettered `internal_error`, and a stop request ends the retrying."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from contracts import (
    TOPIC_DEAD_LETTER,
    TOPIC_PAYMENT,
    PaymentSucceeded,
)
from services.common.backoff import Stopped
from services.common.consumer import process, subscribe
from services.common.deadletter import MessageSource
from services.common.errors import DependencyUnavailable, Forbidden
from services.common.metrics import DEAD_LETTERS, MESSAGES, RETRIES
from services.common.ops import ops_app
from services.common.settings import CommonSettings
from services.common.worker import publish_event, raw_publisher
from tests.support.polling import eventually

pytestmark = pytest.mark.unit
SETTINGS = CommonSettings(topic_prefix="rt.", retry_base_seconds=0.001, retry_cap_seconds=0.005)
SERVICE = "runtime-test"


def paid(n: int) -> PaymentSucceeded:
    return PaymentSucceeded(
        invoice_id=f"inv-{n}", invoice_number=f"INV-{n}", tenant_id="acme", amount=4900,
        currency="USD", payment_reference=f"pi_{n}", payment_method="card visa 4242",
        paid_at=datetime(2013, 8, 1, tzinfo=UTC),
    )


def worker(
    on_paid: Callable[[PaymentSucceeded, MessageSource], Awaitable[object]],
    stop: asyncio.Event | None = None,
) -> tuple[KafkaBroker, list[dict[str, Any]]]:
    broker = KafkaBroker()
    subscribe(broker, SETTINGS, service=SERVICE, topic=TOPIC_PAYMENT, group="g",
              handlers={PaymentSucceeded: on_paid}, publish=raw_publisher(broker), stop=stop)
    dead: list[dict[str, Any]] = []

    @broker.subscriber(SETTINGS.topic(TOPIC_DEAD_LETTER))  # type: ignore[untyped-decorator]
    async def on_dead(body: dict[str, Any]) -> None:
        dead.append(body)

    return broker, dead


async def publish(broker: KafkaBroker, event: Any) -> None:
    await publish_event(broker, SETTINGS, event, TOPIC_PAYMENT, "acme")


def count(metric: Any, **labels: str) -> float:
    return float(metric.labels(**labels)._value.get())


async def test_the_handler_gets_the_model_and_other_types_on_the_topic_are_ignored() -> None:
    seen: list[Any] = []

    async def on_paid(event: PaymentSucceeded, source: MessageSource) -> None:
        seen.append((event, source))

    broker, dead = worker(on_paid)
    ignored = count(MESSAGES, service=SERVICE, outcome="ignored")
    async with TestKafkaBroker(broker) as test_broker:
        await publish(test_broker, paid(1))
        await test_broker.publish(b'{"a": 1}', SETTINGS.topic(TOPIC_PAYMENT),
                                  headers={"event-type": "PaymentFailed"})
    assert [(type(e), e.invoice_id) for e, _ in seen] == [(PaymentSucceeded, "inv-1")]
    assert seen[0][1].topic == SETTINGS.topic(TOPIC_PAYMENT) and seen[0][1].key == b"acme"
    assert dead == []  # a known type this subscriber does not take is not an error
    assert count(MESSAGES, service=SERVICE, outcome="ignored") - ignored == 1


async def test_bad_bytes_an_unknown_type_and_a_contract_violation_are_dead_lettered() -> None:
    async def on_paid(event: PaymentSucceeded, source: MessageSource) -> None:
        raise AssertionError("never called")

    broker, dead = worker(on_paid)
    topic = SETTINGS.topic(TOPIC_PAYMENT)
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(b"{not json", topic, headers={"event-type": "PaymentSucceeded"})
        await test_broker.publish(b"{}", topic, headers={"event-type": "NoSuchEvent"})
        await test_broker.publish(b'{"invoice_id": ""}', topic,
                                  headers={"event-type": "PaymentSucceeded"})
    assert [d["reason"] for d in dead] == ["invalid_json", "unknown_event_type",
                                           "validation_error"]
    assert {d["service"] for d in dead} == {SERVICE}
    assert dead[0]["original"] == "{not json" and dead[0]["topic"] == topic


async def test_a_permanent_error_is_dead_lettered_with_its_reason_and_counted() -> None:
    async def on_paid(event: PaymentSucceeded, source: MessageSource) -> None:
        raise Forbidden("role viewer")

    broker, dead = worker(on_paid)
    before = count(DEAD_LETTERS, service=SERVICE, reason="forbidden")
    async with TestKafkaBroker(broker) as test_broker:
        await publish(test_broker, paid(1))
    assert [(d["reason"], d["detail"]) for d in dead] == [("forbidden", "role viewer")]
    assert count(DEAD_LETTERS, service=SERVICE, reason="forbidden") - before == 1


async def test_an_unexpected_error_is_dead_lettered_and_the_next_message_is_processed() -> None:
    done: list[str] = []

    async def on_paid(event: PaymentSucceeded, source: MessageSource) -> None:
        if event.invoice_id == "inv-1":
            raise KeyError("plan")
        done.append(event.invoice_id)

    broker, dead = worker(on_paid)
    async with TestKafkaBroker(broker) as test_broker:
        await publish(test_broker, paid(1))
        await publish(test_broker, paid(2))
    assert done == ["inv-2"]
    [letter] = dead
    assert letter["reason"] == "internal_error"
    assert letter["detail"].startswith("KeyError: 'plan' at ")
    assert "test_common_consumer.py:" in letter["detail"] and letter["detail"].endswith("on_paid")


async def test_a_retryable_error_is_retried_until_it_passes_while_health_answers() -> None:
    calls: list[int] = []
    outage_over = asyncio.Event()

    async def on_paid(event: PaymentSucceeded, source: MessageSource) -> None:
        calls.append(1)
        if not outage_over.is_set():
            raise DependencyUnavailable("MongoDB")

    broker, dead = worker(on_paid, stop=asyncio.Event())
    retries = count(RETRIES, service=SERVICE, reason="DependencyUnavailable")
    health = httpx.AsyncClient(transport=httpx.ASGITransport(app=ops_app(_ready)),
                               base_url="http://ops")
    async with health, TestKafkaBroker(broker, connect_only=False) as test_broker:
        delivery = asyncio.create_task(publish(test_broker, paid(1)))
        await eventually(lambda: len(calls) >= 3, what="three failed tries", seconds=10)
        assert (await health.get("/healthz")).status_code == 200  # the loop is not blocked
        assert not delivery.done()
        outage_over.set()
        await asyncio.wait_for(delivery, timeout=10)
    assert dead == []
    assert count(RETRIES, service=SERVICE, reason="DependencyUnavailable") - retries >= 3


async def test_a_stop_request_ends_the_retrying_without_acknowledging() -> None:
    stop = asyncio.Event()
    calls: list[int] = []

    async def on_paid(event: PaymentSucceeded, source: MessageSource) -> None:
        calls.append(1)
        raise DependencyUnavailable("Stripe")

    broker, dead = worker(on_paid, stop=stop)
    async with TestKafkaBroker(broker) as test_broker:
        delivery = asyncio.create_task(publish(test_broker, paid(1)))
        await eventually(lambda: calls, what="the first try", seconds=10)
        stop.set()
        with pytest.raises(Stopped):
            await asyncio.wait_for(delivery, timeout=10)
    assert dead == []


async def _ready() -> dict[str, bool]:
    return {"test": True}


async def test_a_dead_letter_the_broker_does_not_take_is_retried_until_it_is() -> None:
    sent: list[tuple[str, bytes]] = []

    async def publish(topic: str, key: bytes, value: bytes, headers: Any) -> None:
        sent.append((topic, key))
        if len(sent) <= 2:
            raise DependencyUnavailable("broker")

    async def on_paid(event: PaymentSucceeded, source: MessageSource) -> None:
        raise AssertionError("never called")

    source = MessageSource(SETTINGS.topic(TOPIC_PAYMENT), 0, 7, b"acme", b"{not json",
                           (("event-type", b"PaymentSucceeded"),))
    before = count(DEAD_LETTERS, service=SERVICE, reason="invalid_json")
    outcome = await process(source, {PaymentSucceeded: on_paid}, service=SERVICE,
                            publish=publish, settings=SETTINGS, stop=asyncio.Event())
    assert outcome == "dead_lettered"
    assert sent == [(SETTINGS.topic(TOPIC_DEAD_LETTER), b"acme")] * 3
    assert count(DEAD_LETTERS, service=SERVICE, reason="invalid_json") - before == 1
