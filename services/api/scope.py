"""What the API's middleware leaves in a request's ASGI scope for later layers: the request id
and the buffered request body."""

from typing import Any

from starlette.types import Scope

REQUEST_ID_SCOPE_KEY = "billing.request_id"
BODY_SCOPE_KEY = "billing.body"


def request_id_of(scope: Scope) -> str:
    """The request id of a request that passed the request-context middleware ("" before)."""
    return str(scope.get(REQUEST_ID_SCOPE_KEY, ""))


def buffered_body(scope: Scope) -> bytes:
    """The request body the body-limit middleware buffered (b"" before it ran)."""
    body: Any = scope.get(BODY_SCOPE_KEY, b"")
    return bytes(body)
