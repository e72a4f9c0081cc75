"""Wire format of platform events: JSON body plus Kafka headers.

Every message carries `event-type` (the contract class name) and `content-type`
(`application/json`); the key is the tenant id. Several event types share a topic
(`InvoiceIssued` and `InvoiceStatusChanged` on `billing.invoice.v1`), so consumers pick the
model by header.
"""

from collections.abc import Sequence

from pydantic import ValidationError

from contracts.base import Contract
from contracts.events import ALL_EVENTS
from services.common.errors import InvalidMessage

EVENT_TYPE_HEADER = "event-type"
Headers = list[tuple[str, bytes]]
_BY_NAME: dict[str, type[Contract]] = {cls.__name__: cls for cls in ALL_EVENTS}


def encode(event: Contract) -> tuple[bytes, Headers]:
    """`event` -> (JSON bytes, headers naming its type)."""
    return event.model_dump_json().encode(), headers_for(type(event).__name__)


def headers_for(event_type: str) -> Headers:
    """The headers of a message carrying `event_type`."""
    return [(EVENT_TYPE_HEADER, event_type.encode()), ("content-type", b"application/json")]


def event_type(headers: Sequence[tuple[str, bytes]] | dict[str, str] | None) -> str | None:
    """The `event-type` header's value, from aiokafka's list or FastStream's dict of headers."""
    if not headers:
        return None
    if isinstance(headers, dict):
        value = headers.get(EVENT_TYPE_HEADER)
        return str(value) if value is not None else None
    for key, raw in headers:
        if key == EVENT_TYPE_HEADER:
            return raw.decode("utf-8", "replace")
    return None


def decode(
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]] | dict[str, str] | None,
    accept: Sequence[type[Contract]],
) -> Contract | None:
    """Parse a message into one of the `accept`ed contracts.

    Returns None when the header names a known event this consumer does not handle (skip it).
    Raises `InvalidMessage` (reason `invalid_json`, `unknown_event_type` or `validation_error`)
    when the message cannot be read; without a header each accepted model is tried in turn.
    """
    if value is None:
        raise InvalidMessage("invalid_json", "empty message")
    name = event_type(headers)
    if name is not None:
        cls = _BY_NAME.get(name)
        if cls is None:
            raise InvalidMessage("unknown_event_type", f"unknown event-type header {name!r}")
        if cls not in accept:
            return None
        candidates: Sequence[type[Contract]] = [cls]
    else:
        candidates = accept
    errors = []
    for cls in candidates:
        try:
            return cls.model_validate_json(value)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise InvalidMessage("invalid_json", str(exc.errors()[0]["msg"])) from exc
            errors.append(f"{cls.__name__}: {exc}")
    raise InvalidMessage("validation_error", "; ".join(errors))
