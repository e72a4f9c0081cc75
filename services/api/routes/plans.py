"""The plan catalog's endpoints (docs/api-endpoints.md, "Plans"; docs/plans.md, "Plans").

`POST /v1/plans` (super) checks the plan synchronously (422 with field errors), signs a
`PlanSubmitted` command, publishes it to `billing.tenant-config.v1` keyed `plan:{code}` and
answers 202 once the broker acknowledged it; the invoicer stores it as the code's next version
(or, when it equals the newest version, as none). `GET /v1/plans` and `GET /v1/plans/{code}`
read the catalog for every signed-in role that reads (super, viewer, tenant). Amounts are minor
units of the plan's `currency`, as everywhere in the API.
"""

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ValidationError

from contracts import Actor, Plan, PlanSubmitted
from contracts.base import utc_now
from services.api.audit import record_write
from services.api.auth import allow
from services.api.context import Ctx
from services.api.principal import Principal
from services.api.problems import Problem, not_found
from services.common.errors import PermanentError
from services.invoicer import api as invoicer

router = APIRouter(tags=["plans"])
Super = Annotated[Principal, Depends(allow("super"))]
Reader = Annotated[Principal, Depends(allow("super", "viewer", "tenant"))]


class PlanBody(Plan):
    """A plan to create, or the next version of an existing code: the `Plan` contract's
    fields (`flat_amount` in minor units of `currency`; `limits` at most one per meter)."""


class PlanAccepted(BaseModel):
    """A plan submission the broker acknowledged: its `code`, `submission_id` (the command's
    event id) and `status_url`, where the new version shows once the invoicer stored it."""

    code: str
    submission_id: str
    status_url: str


class PlanOut(Plan):
    """One version of a plan: the plan, its `version` (1, 2, ...), when and by whom it was
    submitted."""

    version: int
    submitted_at: datetime
    submitted_by: str


class PlanVersionOut(BaseModel):
    """One entry of a plan's history."""

    version: int
    submitted_at: datetime
    submitted_by: str
    plan: Plan


class PlanDetail(PlanOut):
    """The newest version of a plan, plus every version, oldest first."""

    versions: list[PlanVersionOut]


def plan_out(found: invoicer.PlanVersion) -> dict[str, Any]:
    """The fields of `PlanOut` for one stored version."""
    return {**dict(found.plan), "version": found.version, "submitted_at": found.submitted_at,
            "submitted_by": found.submitted_by}


def _invalid(detail: str, errors: list[dict[str, Any]]) -> Problem:
    return Problem(422, "Unprocessable Content", detail, errors=errors)


@router.post("/v1/plans", status_code=202, summary="Create a plan or a new version of it")
async def create_plan(ctx: Ctx, request: Request, who: Super, body: PlanBody) -> PlanAccepted:
    """Submit a plan (super). A code seen before gets its next version; a plan equal to the
    code's newest version adds none. 422 with field errors for an invalid plan."""
    plan = Plan.model_validate(dict(body))
    try:
        invoicer.validate_plan(plan)
        command = PlanSubmitted(event_id=str(uuid.uuid4()), occurred_at=utc_now(), plan=plan,
                                actor=Actor(user_id=who.actor_id, role=who.role))
    except PermanentError as exc:
        raise _invalid("the plan is not valid", [{
            "loc": ["body", "price_plan", "charges"], "msg": exc.detail,
            "type": "value_error"}]) from exc
    except ValidationError as exc:  # pragma: no cover - the body passed the same contract
        raise _invalid("the plan is not valid", [
            {"loc": ["body", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()]) from exc
    await invoicer.publish_command(ctx.broker, ctx.settings, command, f"plan:{plan.code}")
    await record_write(ctx, request, who, "plan.submit", f"plan:{plan.code}",
                       {"submission_id": command.event_id, **plan.model_dump(mode="json")})
    return PlanAccepted(code=plan.code, submission_id=command.event_id,
                        status_url=f"/v1/plans/{plan.code}")


@router.get("/v1/plans", summary="List the plans")
async def list_plans(ctx: Ctx, who: Reader) -> list[PlanOut]:
    """The newest version of every plan, by code: the plans a tenant may choose."""
    return [PlanOut(**plan_out(p)) for p in await invoicer.list_plans(ctx.db)]


@router.get("/v1/plans/{code}", summary="Show a plan and its versions")
async def get_plan(ctx: Ctx, who: Reader, code: str) -> PlanDetail:
    """The newest version of plan `code` and every version, oldest first; 404 unknown."""
    history = await invoicer.plan_versions(ctx.db, code)
    if not history:
        raise not_found(f"plan {code!r}")
    versions = [PlanVersionOut(version=v.version, submitted_at=v.submitted_at,
                               submitted_by=v.submitted_by, plan=v.plan) for v in history]
    return PlanDetail(**plan_out(history[-1]), versions=versions)
