"""The admin console's Plans pages (docs/plans.md, "Plans"): the catalog, one plan with its
versions, and for a super the form that creates a plan or submits its next version.

Pages call the API's own route functions (`routes.plans`) with the session's principal, so
the catalog shows what `GET /v1/plans` answers and a submission is validated, published and
audited exactly as `POST /v1/plans`. The form is CSRF-checked and runs once per one-time token
(`form_tokens`); a refusal re-shows it with a message per field (422), success is a 303 to the
plan's page (the list for a new plan) with a one-time message: the invoicer stores the
version shortly after.
"""

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.api.portal import admin_plans_form as plan_form
from services.api.portal import form_tokens
from services.api.portal.sessions import PortalSession
from services.api.portal.web import PREFIX, CsrfChecked, Operator, Super, context, flash, render
from services.api.problems import Problem
from services.api.routes import plans

router = APIRouter(include_in_schema=False)
#: The one-time token's form name (`form_tokens.once`).
FORM = "plan"


def _form_page(request: Request, session: PortalSession, *, detail: Any, values: Any,
               errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    return render(request, "admin/plan.html", status_code=status_code, nav="plans",
                  detail=detail, values=values, errors=errors or {},
                  can_edit=session.role == "super", form_token=secrets.token_urlsafe(32),
                  frequencies=plan_form.FREQUENCIES)


@router.get(f"{PREFIX}/admin/plans")
async def plan_list(request: Request, session: Operator) -> Response:
    """The newest version of every plan (`plans.list_plans`)."""
    found = await plans.list_plans(context(request), session.principal)
    return render(request, "admin/plans.html", nav="plans", plans=found,
                  can_edit=session.role == "super")


@router.get(f"{PREFIX}/admin/plans/new")
async def new_plan(request: Request, session: Super) -> Response:
    """The form for a new plan (super)."""
    return _form_page(request, session, detail=None, values=plan_form.blank())


@router.get(f"{PREFIX}/admin/plans/{{code}}")
async def plan_page(request: Request, session: Operator, code: str) -> Response:
    """One plan: its newest version, every version, and (super) the form for the next."""
    detail = await plans.get_plan(context(request), session.principal, code)
    return _form_page(request, session, detail=detail,
                      values=plan_form.prefill(detail.versions[-1].plan))


@router.post(f"{PREFIX}/admin/plans")
async def submit_plan(request: Request, checked: CsrfChecked, session: Super) -> Response:
    """Create a plan, or submit the next version of the code in the form."""
    form = await request.form()
    values = plan_form.submitted(form)
    ctx = context(request)
    detail = None
    if values["code"]:
        try:
            detail = await plans.get_plan(ctx, session.principal, values["code"])
        except Problem:
            detail = None
    body, errors = plan_form.parse(values)
    if body is None:
        return _form_page(request, session, detail=detail, values=values, errors=errors,
                          status_code=422)
    try:
        async with form_tokens.once(ctx.db, session, FORM, form.get(form_tokens.FIELD)):
            accepted = await plans.create_plan(ctx, request, session.principal, body)
    except (form_tokens.Resubmitted, form_tokens.StaleForm) as why:
        text = ("That form was sent already: nothing was submitted again."
                if isinstance(why, form_tokens.Resubmitted) else
                "That form has expired: nothing was submitted. Please try again.")
        await flash(request, session, "error", text)
        return RedirectResponse(f"{PREFIX}/admin/plans", status_code=303)
    except Problem as problem:
        errors = plan_form.errors_from_problem(problem.extensions.get("errors") or [],
                                               problem.detail or problem.title)
        return _form_page(request, session, detail=detail, values=values, errors=errors,
                          status_code=problem.status)
    verb = "next version" if detail else "new plan"
    await flash(request, session, "ok", f"Plan {accepted.code} submitted as a {verb} "
                f"(submission {accepted.submission_id}); it is listed once the invoicer "
                "stored it.")
    target = f"/{accepted.code}" if detail else ""
    return RedirectResponse(f"{PREFIX}/admin/plans{target}", status_code=303)

