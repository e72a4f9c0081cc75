"""The API's dead-letter consumer's handling of one record, on an in-memory stand-in for the
collection: a database outage is retried, any other database error skips the record, an
unreadable record is skipped (docs/api-endpoints.md, "Operations")."""

from dataclasses import dataclass, field
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, OperationFailure

from services.api import deadletters
from services.common.codec import encode
from services.common.deadletter import DeadLetter, MessageSource, dead_letter_event

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


async def test_another_database_error_skips_the_record() -> None:
    collection = Collection([OperationFailure("document too large")])
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
