"""The collector's MongoDB store: exact decimals through its fast conversions, and a
processed id inserted twice failing the transaction rather than being skipped."""

import json
from decimal import Decimal
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from services.usage_collector.adapters.store import PROCESSED, MongoUsageStore, ensure_indexes
from services.usage_collector.domain import parse
from services.usage_collector.merge import BatchMerge
from services.usage_collector.query import AGGREGATES

pytestmark = pytest.mark.integration


def merge_of(*events: tuple[int, str, str]) -> BatchMerge:
    merge = BatchMerge()
    for n, qty, time in events:
        merge.add(parse(json.dumps({
            "specversion": "1.0", "id": f"e{n}", "source": "test", "type": "billing.usage",
            "subject": "acme", "time": time,
            "data": {"meter": "cpu_hours", "quantity": qty, "service": "web"},
        }).encode()))
    return merge


async def test_bucket_decimals_are_stored_and_folded_exactly(mongo_db: Any) -> None:
    await ensure_indexes(mongo_db)
    store = MongoUsageStore(mongo_db)
    await store.apply(merge_of(
        (1, "1.500", "2013-07-01T10:05:00Z"), (2, "0.000000000001", "2013-07-01T10:06:00Z")
    ), [])
    await store.apply(merge_of((3, "123456789012.5", "2013-07-01T10:01:00Z")), [])
    (doc,) = [d async for d in mongo_db[AGGREGATES].find({})]
    assert str(doc["sum"]) == "123456789014.000000000001"
    assert (doc["count"], doc["max"]) == (3, Decimal("123456789012.5"))
    assert str(doc["latest"]) == "1E-12", "the latest event (10:06) keeps its exact quantity"


async def test_a_processed_id_inserted_twice_fails_the_transaction(mongo_db: Any) -> None:
    await ensure_indexes(mongo_db)
    store, client = MongoUsageStore(mongo_db), mongo_db.client
    async with client.start_session() as session:
        await session.start_transaction()
        await store._insert_ids(session, ["test/e1"])
        await session.commit_transaction()
    async with client.start_session() as session:
        await session.start_transaction()
        with pytest.raises(OperationFailure):
            await store._insert_ids(session, ["test/e2", "test/e1"])
        await session.abort_transaction()
    assert [d["_id"] async for d in mongo_db[PROCESSED].find({})] == ["test/e1"]
