"""A test's own MongoDB database through the services' own client, dropped afterwards."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.common.mongo import database, make_client
from services.common.settings import CommonSettings

Doc = dict[str, Any]


@asynccontextmanager
async def service_database(
    settings: CommonSettings,
) -> AsyncIterator[tuple[AsyncMongoClient[Doc], AsyncDatabase[Doc]]]:
    """(client, database) as the services open them for `settings.mongo_db`; on exit the
    database is dropped and the client closed."""
    client = make_client(settings)
    try:
        yield client, database(client, settings)
    finally:
        await client.drop_database(settings.mongo_db)
        await client.close()
