"""Operations endpoints (docs/api-endpoints.md, "Operations"): the dead letters of the
platform (`GET /v1/dead-letters`) and operator-issued invoices
(`POST /v1/tenants/{tenant_id}/invoices`)."""

from datetime import date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from contracts.base import utc_now
from services.api import deadletters
from services.api.audit import record_write
from services.api.auth import allow
from services.api.context import Ctx
from services.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, decode_cursor, page
from services.api.principal import Principal
from services.api.problems import Problem, not_found
from services.api.tenants import tenant_config
from services.invoicer import api as invoicer

router = APIRouter(tags=["operations"])
Staff = Annotated[Principal, Depends(allow("super", "viewer"))]
Super = Annotated[Principal, Depends(allow("super"))]
#: What `GET /v1/dead-letters` lists without `since`.
DEFAULT_WINDOW = timedelta(hours=24)


class DeadLetterView(BaseModel):
    """A message a worker could not process: when, which `service` gave up on it, where it
    came from (`topic` as the worker read it, `partition`, `offset`, `key`, usually the
    tenant id), the machine-readable `reason` and the human `detail`. `original` is the
    message as received (UTF-8 text, or base64 per `original_encoding`), for a replay."""

    event_id: str
    occurred_at: datetime
    service: str
    topic: str
    partition: int
    offset: int
    key: str | None
    reason: str
    detail: str
    original: str
    original_encoding: str


def _position(cursor: str | None) -> tuple[datetime, str] | None:
    values = decode_cursor(cursor)
    if values is None:
        return None
    if len(values) != 2 or not isinstance(values[0], datetime) or not isinstance(values[1], str):
        raise Problem(400, "Bad Request", "the cursor does not belong to this list")
    return values[0], values[1]


@router.get("/v1/dead-letters", summary="Dead letters")
async def list_dead_letters(
    ctx: Ctx, who: Staff, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
    since: Annotated[datetime | None, Query(
        description="ISO 8601 instant with offset; default 24 hours ago")] = None,
) -> Page[DeadLetterView]:
    """Dead letters that occurred at or after `since`, newest first (kept 7 days)."""
    if since is not None and since.tzinfo is None:
        raise Problem(422, "Unprocessable Content", "since needs a UTC offset", errors=[
            {"loc": ["query", "since"], "msg": "needs a UTC offset", "type": "value_error"}])
    start = since or utc_now() - DEFAULT_WINDOW
    docs = await deadletters.recent(ctx.db, start, _position(cursor), limit + 1)
    views = [DeadLetterView(event_id=d["_id"], **{k: v for k, v in d.items()
                                                   if k in DeadLetterView.model_fields})
             for d in docs]
    return page(views, limit, lambda v: [v.occurred_at, v.event_id])


class IssueBody(BaseModel):
    """Issue the period ending on local date `period_end` (the tenant's time zone). `force`
    (with a `reason`) issues for a tenant that generates its invoices automatically."""

    model_config = ConfigDict(extra="forbid")

    period_end: date
    force: bool = False
    reason: str | None = Field(default=None, max_length=500)


class IssuedInvoice(BaseModel):
    """The invoice of the period: `outcome` `issued` (201) or `already_issued` (200)."""

    tenant_id: str
    period_end: date
    outcome: Literal["issued", "already_issued"]
    invoice_number: str | None


@router.post("/v1/tenants/{tenant_id}/invoices", status_code=201, summary="Issue an invoice",
             responses={200: {"model": IssuedInvoice, "description": "already issued"},
                        409: {"description": "refused by a billing rule (the detail says "
                                             "which)"}})
async def issue_invoice(ctx: Ctx, request: Request, response: Response, who: Super,
                        tenant_id: str, body: IssueBody) -> IssuedInvoice:
    """Issue the tenant's invoice for the period ending on `period_end`, with the rules of
    `billing invoices issue` (docs/billing-periods.md, "Operator issue"): 201 issued, 200 when
    that period is invoiced already, 409 when a rule refuses (the tenant generates its
    invoices and `force` is not set, no period ends that day, the period has not ended, it
    would overlap or leave a gap), 422 `force` without a `reason`, 404 unknown tenant."""
    await tenant_config(ctx, who, tenant_id)
    reason = (body.reason or "").strip()
    if body.force and not reason:
        raise Problem(422, "Unprocessable Content", "force needs a reason", errors=[
            {"loc": ["body", "reason"], "msg": "required with force", "type": "missing"}])
    forced = invoicer.Forced(who.actor_id, reason) if body.force else None
    try:
        outcome = await invoicer.issue_period(ctx.settings, tenant_id, body.period_end,
                                              forced=forced)
    except LookupError as exc:
        raise not_found(f"tenant {tenant_id!r}") from exc
    except invoicer.IssueRefused as exc:
        raise Problem(409, "Conflict", str(exc)) from exc
    if not outcome.issued:
        response.status_code = 200
        return IssuedInvoice(tenant_id=tenant_id, period_end=body.period_end,
                             outcome="already_issued", invoice_number=outcome.number)
    await record_write(ctx, request, who, "invoice.issue", f"tenant:{tenant_id}", {
        "period_end": body.period_end.isoformat(), "invoice_number": outcome.number,
        "force": body.force, "reason": reason or None})
    return IssuedInvoice(tenant_id=tenant_id, period_end=body.period_end, outcome="issued",
                         invoice_number=outcome.number)
