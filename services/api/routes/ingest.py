"""`POST /v1/usage`: usage events over HTTP for publishers that do not speak Kafka
(docs/api-endpoints.md, "Usage ingestion").

The body is one CloudEvent (`application/cloudevents+json`) or a JSON array of 1..1,000 of
them (`application/cloudevents-batch+json`). Each event is validated exactly as the usage
collector accepts it from the topic (`services.usage_collector.api.check_usage`); an `ingest`
key restricted to a `source` only publishes events with that source. Valid events are
re-encoded with the platform's codec and published to `billing.usage.v1` keyed by tenant id
(`subject`); the answer is 202 only once the broker acknowledged every one of them, and counts
them per tenant and day (`services/api/ingest_counts.py`). An invalid event never makes the
valid ones fail: it is listed in `rejected` with its errors.

Errors: 415 for another media type, 400 for malformed JSON, 413 for more than 1,000 events,
422 when no event is valid (a problem listing each event's errors), 503 when the broker does
not acknowledge in time (nothing is claimed accepted; retrying is safe: the collector drops an
event it already has, by `source` and `id`).
"""

import asyncio
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from prometheus_client import Counter

from contracts.topics import TOPIC_USAGE
from contracts.usage import UsageRecorded
from services.api.auth import allow
from services.api.context import ApiContext, Ctx
from services.api.ingest_counts import add_accepted
from services.api.models_ingest import (
    BATCH,
    MAX_BATCH_EVENTS,
    SINGLE,
    EventError,
    IngestResult,
    RejectedEvent,
    request_body_openapi,
)
from services.api.principal import Principal
from services.api.problems import Problem
from services.common.codec import encode
from services.usage_collector.api import Rejected, check_usage

log = logging.getLogger(__name__)
router = APIRouter(tags=["usage"])

USAGE_EVENTS = Counter(
    "billing_api_usage_events_total",
    "Usage events received by POST /v1/usage, by outcome (accepted: acknowledged by the "
    "broker; rejected: refused with per-event errors).",
    ["outcome"],
)
#: How long the broker has to acknowledge a request's events before the answer is 503.
PUBLISH_TIMEOUT_SECONDS = 10.0

#: Where the collector's own acceptance checks (after the contract) point to.
_REASON_LOC = {
    "unknown_aggregation": "data.aggregation",
    "aggregation_mismatch": "data.aggregation",
    "quantity_out_of_range": "data.quantity",
    "missing_resource_id": "data.resource_id",
    "invalid_time": "time",
}


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _items(request: Request, body: bytes) -> list[Any]:
    """The request's events as decoded JSON values (415, 400, 413 and 422 problems)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in (SINGLE, BATCH):
        raise Problem(415, "Unsupported Media Type",
                      f"send {SINGLE} (one event) or {BATCH} (an array of events)")
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise Problem(400, "Bad Request", f"the body is not valid JSON: {exc}") from exc
    if media == SINGLE:
        return [value]
    if not isinstance(value, list):
        raise Problem(422, "Unprocessable Content", f"a {BATCH} body is a JSON array")
    if not value:
        raise Problem(422, "Unprocessable Content", "the batch holds no event")
    if len(value) > MAX_BATCH_EVENTS:
        raise Problem(413, "Content Too Large",
                      f"{len(value)} events; a batch holds at most {MAX_BATCH_EVENTS}",
                      max_events=MAX_BATCH_EVENTS)
    return value


def _check(index: int, item: Any, source: str | None) -> UsageRecorded | RejectedEvent:
    """One event validated (and its source checked against `source` when set)."""
    errors: list[EventError] = []
    event: UsageRecorded | None = None
    try:
        event = check_usage(json.dumps(item).encode())
    except Rejected as exc:
        errors = [EventError(reason=exc.reason, loc=loc, msg=msg) for loc, msg in exc.errors]
        if not errors:
            errors = [EventError(reason=exc.reason, loc=_REASON_LOC.get(exc.reason),
                                 msg=exc.detail or exc.reason)]
    given = item.get("source") if isinstance(item, dict) else None
    if source is not None and given != source:
        errors.append(EventError(reason="source_not_allowed", loc="source",
                                 msg=f"this key publishes only events with source {source!r}"))
    if event is not None and not errors:
        return event
    ident = item.get("id") if isinstance(item, dict) else None
    return RejectedEvent(index=index, id=ident if isinstance(ident, str) else None,
                         errors=errors)


async def _publish(ctx: ApiContext, events: list[UsageRecorded]) -> None:
    """Publish `events` and wait until the broker acknowledged all of them (503 otherwise)."""
    topic = ctx.settings.topic(TOPIC_USAGE)

    async def one(event: UsageRecorded) -> None:
        body, headers = encode(event)
        await ctx.broker.publish(body, topic, key=event.subject.encode(),
                                 headers={k: v.decode() for k, v in headers})

    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            await asyncio.gather(*(one(event) for event in events))
    except Exception as exc:  # KafkaError, timeout, a broker that is not connected
        log.warning("publishing %d usage events failed: %r", len(events), exc)
        raise Problem(503, "Service Unavailable",
                      "the broker did not acknowledge the events; none is accepted, retry",
                      headers={"Retry-After": "5"}) from exc


@router.post(
    "/v1/usage", status_code=202, response_model=IngestResult,
    summary="Publish usage events (CloudEvents 1.0, one or a batch)",
    responses={400: {"description": "Malformed JSON"},
               413: {"description": f"More than {MAX_BATCH_EVENTS} events"},
               415: {"description": "Neither of the two CloudEvents media types"},
               422: {"description": "No event was valid (per-event errors in `rejected`)"},
               503: {"description": "The broker did not acknowledge the events"}},
    openapi_extra=request_body_openapi(),
)
async def post_usage(
    request: Request, ctx: Ctx,
    who: Annotated[Principal, Depends(allow("ingest", "super"))],
) -> IngestResult:
    """Validate, publish and count usage events; 202 once the broker acknowledged every valid
    one. Keys of role `ingest` with a `source` only publish events with that source."""
    items = _items(request, await request.body())
    source = who.source if who.role == "ingest" else None
    checked = [_check(i, item, source) for i, item in enumerate(items)]
    valid = [c for c in checked if isinstance(c, UsageRecorded)]
    rejected = [c for c in checked if isinstance(c, RejectedEvent)]
    if rejected:
        USAGE_EVENTS.labels("rejected").inc(len(rejected))
    if not valid:
        raise Problem(422, "Unprocessable Content", "no event was accepted", accepted=0,
                      rejected=[r.model_dump() for r in rejected])
    await _publish(ctx, valid)
    await add_accepted(ctx.db, [(e.subject, e.time) for e in valid])
    USAGE_EVENTS.labels("accepted").inc(len(valid))
    return IngestResult(accepted=len(valid), rejected=rejected)
