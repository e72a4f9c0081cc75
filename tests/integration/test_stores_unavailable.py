"""Each worker's MongoDB store reports a database that does not answer as
`DependencyUnavailable` (what the consumer runtime retries), never as a raw driver error."""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import ServerSelectionTimeoutError

from services.common.errors import DependencyUnavailable
from services.devstack.ports import free_port
from services.invoicer.adapters.store import InvoicerStore
from services.notifier.adapters.store import MongoNotificationStore
from services.payments.adapters.mongo_store import MongoPaymentsStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def dead_client() -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """A client whose server never answers (nothing listens on its port)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
        serverSelectionTimeoutMS=300, tz_aware=True,
    )
    yield client
    await client.close()


READS: dict[str, Callable[[AsyncMongoClient[dict[str, Any]]], Awaitable[object]]] = {
    "invoicer": lambda c: InvoicerStore(c, c["b"]).invoice("inv-1"),
    "payments": lambda c: MongoPaymentsStore(c, c["b"]).customer("acme"),
    "notifier": lambda c: MongoNotificationStore(c, c["b"]).status("n-1"),
}


@pytest.mark.parametrize("worker", sorted(READS))
async def test_a_database_that_does_not_answer_is_dependency_unavailable(
    worker: str, dead_client: AsyncMongoClient[dict[str, Any]],
) -> None:
    with pytest.raises(DependencyUnavailable, match="ServerSelectionTimeoutError") as info:
        await READS[worker](dead_client)
    assert isinstance(info.value.__cause__, ServerSelectionTimeoutError)
