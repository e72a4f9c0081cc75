"""MongoDB errors become typed errors at the adapters: an unavailable server is
`DependencyUnavailable` (the runtime retries it), a duplicate key stays a logic error, and a
method running inside a transaction leaves the raw error to the driver's own retry."""

from typing import Any, cast

import pytest
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from services.common.errors import DependencyUnavailable
from services.common.mongo_errors import is_unavailable, unavailable_as_retryable

pytestmark = pytest.mark.unit


@unavailable_as_retryable
class Store:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def read(self, session: Any = None) -> None:
        raise self.error

    async def _private(self) -> None:
        raise self.error


@pytest.mark.parametrize("error", [
    ServerSelectionTimeoutError("no primary"), AutoReconnect("connection reset"),
    OperationFailure("WriteConflict", code=112),
])
async def test_an_unavailable_or_interrupted_server_becomes_dependency_unavailable(
    error: Exception,
) -> None:
    with pytest.raises(DependencyUnavailable, match=r"MongoDB \(Store.read\)") as info:
        await Store(error).read()
    assert info.value.__cause__ is error and is_unavailable(error)


async def test_a_duplicate_key_stays_a_logic_error() -> None:
    error = DuplicateKeyError("E11000 duplicate key", code=11000)
    with pytest.raises(DuplicateKeyError):
        await Store(error).read()
    assert not is_unavailable(error)


async def test_inside_a_transaction_and_in_private_helpers_the_raw_error_is_kept() -> None:
    error = AutoReconnect("connection reset")
    session = cast(AsyncClientSession, object.__new__(AsyncClientSession))
    with pytest.raises(AutoReconnect):
        await Store(error).read(session=session)
    with pytest.raises(AutoReconnect):
        await Store(error)._private()
