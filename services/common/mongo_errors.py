"""MongoDB errors as the platform's typed errors: an unavailable or interrupted server becomes
`DependencyUnavailable` (retried by the consumer runtime); logic errors stay as they are.

    @unavailable_as_retryable          on a MongoDB adapter class: every public coroutine
    class MongoPaymentsStore: ...      method raises `DependencyUnavailable` instead

    with mongo_unavailable(): ...      the same for one block

Logic errors, which retrying cannot fix, are NOT wrapped: `DuplicateKeyError` and any other
`WriteError` (a document refused), `BulkWriteError`, `InvalidOperation`, `ConfigurationError`,
`InvalidName`, `DocumentTooLarge`. Callers keep catching `DuplicateKeyError` as "already
done". A method called with a session (inside a transaction) is left alone: the driver's
`with_transaction` must still see the raw error to retry the transaction itself; the method
that runs the transaction is the boundary that wraps. Policy: docs/design.md#reliability.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    DocumentTooLarge,
    InvalidName,
    InvalidOperation,
    PyMongoError,
    WriteError,
)

from services.common.errors import DependencyUnavailable

C = TypeVar("C", bound=type)
#: PyMongo errors that say something about the request, not about the server's availability.
LOGIC_ERRORS: tuple[type[Exception], ...] = (
    WriteError, BulkWriteError, InvalidOperation, ConfigurationError, InvalidName,
    DocumentTooLarge,
)


def is_unavailable(exc: BaseException) -> bool:
    """True for a PyMongo error that retrying later can fix (not one of `LOGIC_ERRORS`)."""
    return isinstance(exc, PyMongoError) and not isinstance(exc, LOGIC_ERRORS)


@contextlib.contextmanager
def mongo_unavailable(what: str = "MongoDB") -> Iterator[None]:
    """Re-raise an availability `PyMongoError` from the block as `DependencyUnavailable`
    (the original is its `__cause__`); logic errors pass unchanged."""
    try:
        yield
    except PyMongoError as exc:
        if not is_unavailable(exc):
            raise
        raise DependencyUnavailable(f"{what}: {type(exc).__name__}: {exc}"[:500]) from exc


def unavailable_as_retryable(cls: C) -> C:
    """Class decorator for a MongoDB adapter: wrap each public `async def` method with
    `mongo_unavailable(<Class.method>)`, except when called with a session argument."""
    for name, member in list(vars(cls).items()):
        if name.startswith("_") or not inspect.iscoroutinefunction(member):
            continue
        setattr(cls, name, _wrapped(member, f"MongoDB ({cls.__name__}.{name})"))
    return cls


def _wrapped(method: Callable[..., Any], what: str) -> Callable[..., Any]:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        if any(isinstance(a, AsyncClientSession) for a in (*args, *kwargs.values())):
            return await method(*args, **kwargs)
        with mongo_unavailable(what):
            return await method(*args, **kwargs)

    return call
