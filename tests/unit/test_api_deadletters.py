"""The API's dead-letter consumer's handling of one record, on an in-memory stand-in for the
collection: every transient database error is retried, a logic error skips the record, an
unreadable record is skipped; and its start, retried with back-off until the API stops
(docs/api-endpoints.md, "Operations")."""

from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pymongo.errors import (
    AutoReconnect,
    DocumentTooLarge,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    WriteError,
)

from services.api import deadletters
from services.common.codec import encode
from services.common.deadletter import DeadLetter, MessageSource, dead_letter_event
from services.common.settings import CommonSettings
from tests.support.polling import eventually

pytestmark = pytest.mark.unit


@dataclass
class Result:
    upserted_id: Any


@dataclass
class Collection:
    """`update_one` raising `failures` in turn, then keeping the document once per id."""

    failures: list[Exception] = field(default_factory=list)
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def update_one(self, query: dict[str, Any], update: dict[str, Any],
                         upsert: bool) -> Result:
        if self.failures:
            raise self.failures.pop(0)
        key = query["_id"]
        if key in self.docs:
            return Result(None)
        self.docs[key] = update["$setOnInsert"]
        return Result(key)


def source() -> MessageSource:
    event = dead_letter_event("invoicer", DeadLetter(MessageSource(topic="t"), "invalid_json"))
    body, headers = encode(event)
    return MessageSource(topic="billing.dead-letter.v1", value=body, headers=tuple(headers))


async def test_a_dead_letter_is_stored_once_after_an_outage() -> None:
    collection = Collection([AutoReconnect("down")])
    db: Any = {deadletters.COLLECTION: collection}
    record = source()
    assert await deadletters.handle(db, record) == "stored"
    assert await deadletters.handle(db, record) == "duplicate"
    [doc] = collection.docs.values()
    assert doc["reason"] == "invalid_json" and doc["service"] == "invoicer"


@pytest.mark.parametrize("error", [
    OperationFailure("not primary", code=10107), ExecutionTimeout("operation exceeded time"),
    NetworkTimeout("timed out")])
async def test_every_transient_database_error_is_retried(error: Exception) -> None:
    collection = Collection([error, error])
    db: Any = {deadletters.COLLECTION: collection}
    assert await deadletters.handle(db, source()) == "stored"
    assert len(collection.docs) == 1 and collection.failures == []


@pytest.mark.parametrize("error", [
    WriteError("document failed validation", code=121), DocumentTooLarge("too large")])
async def test_a_logic_database_error_skips_the_record(error: Exception) -> None:
    collection = Collection([error])
    db: Any = {deadletters.COLLECTION: collection}
    assert await deadletters.handle(db, source()) == "not_stored"
    assert collection.docs == {}


async def test_an_unreadable_record_is_skipped() -> None:
    db: Any = {deadletters.COLLECTION: Collection()}
    assert await deadletters.handle(db, MessageSource(value=b"{")) == "unreadable"
    other = dead_letter_event("x", DeadLetter(MessageSource(), "r"))
    body, _ = encode(other)
    headers = (("event-type", b"UsageRecorded"),)
    assert await deadletters.handle(db, MessageSource(value=body, headers=headers)) \
        == "unreadable"


@dataclass
class FlakyBroker:
    """`start` fails `failures` times, then succeeds; counts starts and stops."""

    failures: int
    started: int = 0
    stopped: int = 0

    async def start(self) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("kafka is not there")
        self.started += 1

    async def stop(self) -> None:
        self.stopped += 1


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def _consumer(broker: FlakyBroker) -> deadletters.DeadLetterConsumer:
    consumer = deadletters.DeadLetterConsumer(CommonSettings(), {}, retry_base=0.001,
                                              retry_cap=0.01)  # type: ignore[arg-type]
    consumer.broker = broker  # type: ignore[assignment]
    return consumer


async def test_a_failed_start_is_retried_until_the_consumer_runs() -> None:
    failures = _sample("billing_api_dead_letter_consumer_start_failures_total")
    broker = FlakyBroker(failures=3)
    consumer = _consumer(broker)
    consumer.start()
    await eventually(lambda: _sample("billing_api_dead_letter_consumer_up") == 1,
                     what="the consumer up after three failed starts")
    assert broker.started == 1
    assert _sample("billing_api_dead_letter_consumer_start_failures_total") == failures + 3
    await consumer.stop()
    assert _sample("billing_api_dead_letter_consumer_up") == 0


async def test_stopping_the_api_ends_the_retries() -> None:
    broker = FlakyBroker(failures=10**9)
    consumer = _consumer(broker)
    consumer.start()
    before = _sample("billing_api_dead_letter_consumer_start_failures_total")
    await eventually(
        lambda: _sample("billing_api_dead_letter_consumer_start_failures_total") >= before + 2,
        what="two failed starts counted")
    await consumer.stop()
    assert consumer.running is False and broker.started == 0
    assert _sample("billing_api_dead_letter_consumer_up") == 0
