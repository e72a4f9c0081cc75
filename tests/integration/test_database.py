"""The database speaks real MongoDB: transactions, tz-aware datetimes, Decimal128, unique keys."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from bson import Decimal128
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from services.common.mongo import database, make_client
from services.common.settings import CommonSettings

pytestmark = pytest.mark.integration


async def test_a_transaction_writes_decimal_and_aware_datetimes_and_a_unique_index_holds(
    common_settings: CommonSettings,
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = make_client(common_settings)
    db = database(client, common_settings)
    try:
        await db.records.create_index("key", unique=True)
        when = datetime(2013, 7, 1, 12, 30, tzinfo=UTC)
        async with client.start_session() as session:
            async with await session.start_transaction():
                await db.records.insert_one(
                    {"key": "a", "quantity": Decimal("0.000001"), "at": when}, session=session
                )
                await db.records.insert_one(
                    {"key": "b", "quantity": Decimal("12345678901234567890.123456")},
                    session=session,
                )
        doc = await db.records.find_one({"key": "a"})
        assert doc is not None
        assert doc["quantity"] == Decimal("0.000001") and isinstance(doc["quantity"], Decimal)
        assert doc["at"] == when and doc["at"].tzinfo is not None
        raw = await client.get_database(common_settings.mongo_db).records.find_one({"key": "b"})
        assert raw is not None and isinstance(raw["quantity"], Decimal128)
        with pytest.raises(DuplicateKeyError):
            await db.records.insert_one({"key": "a"})

        # An aborted transaction leaves nothing behind.
        async with client.start_session() as session:
            with pytest.raises(RuntimeError):
                async with await session.start_transaction():
                    await db.records.insert_one({"key": "c"}, session=session)
                    raise RuntimeError("abort")
        assert await db.records.count_documents({"key": "c"}) == 0
    finally:
        await client.drop_database(common_settings.mongo_db)
        await client.close()
