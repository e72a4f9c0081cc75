"""Request and response shapes of `POST /v1/usage` (docs/api-endpoints.md, "Usage ingestion")."""

from typing import Any, Final

from pydantic import BaseModel, Field

from contracts.usage import UsageRecorded

#: Media type of one CloudEvent in structured mode.
SINGLE: Final = "application/cloudevents+json"
#: Media type of a JSON array of CloudEvents.
BATCH: Final = "application/cloudevents-batch+json"
#: Most events one batch request may carry (more: 413).
MAX_BATCH_EVENTS: Final = 1_000


class EventError(BaseModel):
    """Why one event was refused: `reason` is the code the usage collector dead-letters such
    an event with (`validation_error`, `negative_quantity`, `unknown_aggregation`, ...) or
    `source_not_allowed` (the ingest key is restricted to another `source`); `loc` the dotted
    path of the offending field when known; `msg` a human-readable explanation."""

    reason: str
    loc: str | None = None
    msg: str


class RejectedEvent(BaseModel):
    """A refused event: its position in the request (0 for a single event), its CloudEvents
    `id` when it has a readable one, and every error found."""

    index: int = Field(ge=0)
    id: str | None = None
    errors: list[EventError]


class IngestResult(BaseModel):
    """The answer of an accepted request (202): `accepted` events were acknowledged by the
    broker on `billing.usage.v1`; `rejected` lists the others (empty when all were valid)."""

    accepted: int = Field(ge=0)
    rejected: list[RejectedEvent]


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """`schema` with every local `$ref` to `#/$defs/X` replaced by the definition itself."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def request_body_openapi() -> dict[str, Any]:
    """The OpenAPI `requestBody` of `POST /v1/usage`: one `UsageRecorded` CloudEvent or an
    array of 1..`MAX_BATCH_EVENTS` of them (the route reads the raw body itself)."""
    raw = UsageRecorded.model_json_schema()
    event = _inline(raw, raw.get("$defs", {}))
    batch = {"type": "array", "items": event, "minItems": 1, "maxItems": MAX_BATCH_EVENTS}
    return {"requestBody": {"required": True, "content": {
        SINGLE: {"schema": event},
        BATCH: {"schema": batch},
    }}}
