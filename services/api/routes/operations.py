"""Operations endpoints (docs/api-endpoints.md, "Operations"): the dead letters of the
platform (`GET /v1/dead-letters`) and operator-issued invoices
(`POST /v1/tenants/{tenant_id}/invoices`)."""

import contextlib
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import DuplicateKeyError

from contracts.base import utc_now
from services.api import deadletters
from services.api.audit import COLLECTION as AUDIT
from services.api.audit import record_write
from services.api.auth import allow
from services.api.context import ApiContext, Ctx
from services.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, decode_time_cursor, page
from services.api.principal import Principal
from services.api.problems import Problem, not_found
from services.api.tenants import tenant_config
from services.invoicer import api as invoicer

router = APIRouter(tags=["operations"])
Staff = Annotated[Principal, Depends(allow("super", "viewer"))]
Super = Annotated[Principal, Depends(allow("super"))]
#: What `GET /v1/dead-letters` lists without `since`.
DEFAULT_WINDOW = timedelta(hours=24)
#: The local period end dates an operator can issue (outside them a time zone's offset could
#: take the period's instants out of the years Python's dates hold).
FIRST_PERIOD_END = date(1970, 1, 1)
LAST_PERIOD_END = date(9998, 12, 31)


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
    docs = await deadletters.recent(ctx.db, start, decode_time_cursor(cursor), limit + 1)
    views = [DeadLetterView(event_id=d["_id"], **{k: v for k, v in d.items()
                                                   if k in DeadLetterView.model_fields})
             for d in docs]
    return page(views, limit, lambda v: [v.occurred_at, v.event_id])


class IssueBody(BaseModel):
    """Issue the period ending on local date `period_end` (the tenant's time zone). `force`
    (with a `reason`) issues for a tenant that generates its invoices automatically."""

    model_config = ConfigDict(extra="forbid")

    period_end: date = Field(ge=FIRST_PERIOD_END, le=LAST_PERIOD_END)
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
    would overlap or leave a gap), 422 `force` without a `reason` or a `period_end` outside
    1970-01-01..9998-12-31, 404 unknown tenant. Audited: `invoice.issue` once per invoice
    (also by the retry that finds it issued when the first audit write failed) and
    `invoice.issue.refused` with the rule's detail."""
    await tenant_config(ctx, who, tenant_id)
    reason = (body.reason or "").strip()
    if body.force and not reason:
        raise Problem(422, "Unprocessable Content", "force needs a reason", errors=[
            {"loc": ["body", "reason"], "msg": "required with force", "type": "missing"}])
    forced = invoicer.Forced(who.actor_id, reason) if body.force else None
    change = {"period_end": body.period_end.isoformat(), "force": body.force,
              "reason": reason or None}
    try:
        outcome = await invoicer.issue_period(ctx.settings, tenant_id, body.period_end,
                                              forced=forced)
    except LookupError as exc:
        raise not_found(f"tenant {tenant_id!r}") from exc
    except OverflowError as exc:  # date arithmetic beyond the years a date holds
        raise Problem(422, "Unprocessable Content", f"period_end {body.period_end} is out of "
                      "range in the tenant's time zone") from exc
    except invoicer.IssueRefused as exc:
        await record_write(ctx, request, who, "invoice.issue.refused", f"tenant:{tenant_id}",
                           {**change, "detail": str(exc)})
        raise Problem(409, "Conflict", str(exc)) from exc
    if outcome.number is not None:
        await _audit_issue(ctx, request, who, tenant_id,
                           {**change, "invoice_number": outcome.number},
                           check_existing=not outcome.issued)
    if not outcome.issued:
        response.status_code = 200
        return IssuedInvoice(tenant_id=tenant_id, period_end=body.period_end,
                             outcome="already_issued", invoice_number=outcome.number)
    return IssuedInvoice(tenant_id=tenant_id, period_end=body.period_end, outcome="issued",
                         invoice_number=outcome.number)


async def _audit_issue(ctx: ApiContext, request: Request, who: Principal, tenant_id: str,
                       change: dict[str, Any], *, check_existing: bool) -> None:
    """Record `invoice.issue` once per invoice: its id is derived from the tenant and the
    period end, so the retry of an issue whose audit write failed (it answers
    `already_issued`) records it, and any later retry does not. With `check_existing`, an
    entry recorded under another id (before ids were derived) also counts."""
    if check_existing and await ctx.db[AUDIT].find_one(
            {"action": "invoice.issue", "change.invoice_number": change["invoice_number"]},
            projection={"_id": 1}) is not None:
        return
    record_id = f"audit_invoice_issue_{tenant_id}_{change['period_end']}"
    with contextlib.suppress(DuplicateKeyError):
        await record_write(ctx, request, who, "invoice.issue", f"tenant:{tenant_id}", change,
                           record_id=record_id)
