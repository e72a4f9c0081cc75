"""A tenant's page in the admin console, its Billing tab: the billing configuration form
(editable by super, read-only for viewer), the configuration history, the invoice history and
the super's actions (docs/portal.md, "Admin console")."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.api import reads_convert as convert
from services.api.models_reads import InvoiceDetail, InvoiceSummary
from services.api.portal import admin_form, form_tokens
from services.api.portal.admin_views import RESUBMITTED, STALE_FORM, UNPAID, period_label
from services.api.portal.sessions import PortalSession
from services.api.portal.web import PREFIX, CsrfChecked, Operator, Super, context, flash, render
from services.api.problems import Problem
from services.api.routes import reads, writes
from services.invoicer import api as invoicer

router = APIRouter(include_in_schema=False)
#: Invoices listed in the invoice history (the newest are kept when there are more).
HISTORY_SIZE = 200


def tenant_path(tenant_id: str) -> str:
    """The tenant's page in the admin console."""
    return f"{PREFIX}/admin/tenants/{tenant_id}"


async def back_to_tab(request: Request, session: PortalSession, tenant_id: str, text: str,
                      kind: str = "ok") -> RedirectResponse:
    """303 to the tenant's tab, which shows `text` once (the session's message, `kind` `ok`
    or `error`): the outcome never travels in the URL."""
    await flash(request, session, kind, text)
    return RedirectResponse(tenant_path(tenant_id), status_code=303)


async def not_run(request: Request, session: PortalSession, tenant_id: str,
                  why: form_tokens.Resubmitted | form_tokens.StaleForm) -> RedirectResponse:
    """303 to the tab saying why the form was not run (sent before, or out of date)."""
    if isinstance(why, form_tokens.Resubmitted):
        return await back_to_tab(request, session, tenant_id, RESUBMITTED)
    return await back_to_tab(request, session, tenant_id, STALE_FORM, kind="error")


async def _invoices(request: Request, tenant_id: str
                    ) -> tuple[list[InvoiceSummary], dict[str, InvoiceDetail]]:
    """The tenant's invoices by number (the last `HISTORY_SIZE`) and the details of the paid
    ones (their payment reference and method), from the same invoice documents (an operator
    session: the `Operator` dependency checked access)."""
    ctx = context(request)
    docs: list[dict[str, Any]] = []
    after = None
    while True:
        found = await invoicer.invoice_rows(ctx.db, tenant_id=tenant_id, after=after,
                                            limit=HISTORY_SIZE)
        docs = (docs + found)[-HISTORY_SIZE:]
        if len(found) < HISTORY_SIZE:
            break
        after = found[-1]["invoice_number"]
    details = [convert.invoice_detail(d) for d in docs if d.get("paid_date")]
    return [convert.invoice_summary(d) for d in docs], {d.invoice_number: d for d in details}


async def tenant_page(request: Request, session: PortalSession, tenant_id: str, *,
                      status_code: int = 200, values: dict[str, Any] | None = None,
                      errors: dict[str, str] | None = None,
                      action_errors: dict[str, str] | None = None,
                      action_values: dict[str, str] | None = None,
                      action_message: str | None = None) -> Response:
    """The Billing tab; `values`/`errors` re-show a refused configuration form,
    `action_*` a refused action form (its field messages and what was typed). Each form
    gets a new one-time token (`form_tokens`)."""
    ctx = context(request)
    tenant = await reads.get_tenant(ctx, session.principal, tenant_id)
    config = await reads.get_billing_config(ctx, session.principal, tenant_id)
    invoices, details = await _invoices(request, tenant_id)
    zone = config.in_force.timezone
    history = [{"row": r, "period": period_label(r.period_start, r.period_end, zone),
                "detail": details.get(r.invoice_number)} for r in reversed(invoices)]
    return render(
        request, "admin/tenant.html", status_code=status_code, tenant=tenant, config=config,
        values=values or admin_form.prefill(config.in_force), errors=errors or {},
        form_tokens=form_tokens.new_tokens(), frequencies=admin_form.FREQUENCIES, history=history,
        unpaid=[r.invoice_number for r in invoices if r.status in UNPAID],
        operator_issued=not config.in_force.settings.auto_generate_invoices,
        can_edit=session.role == "super", action_errors=action_errors or {},
        action_values=action_values or {}, action_message=action_message)


@router.get(f"{PREFIX}/admin/tenants/{{tenant_id}}")
async def tenant(request: Request, session: Operator, tenant_id: str) -> Response:
    """The tenant's Billing tab (after a form, its outcome is the session's message)."""
    return await tenant_page(request, session, tenant_id)


@router.post(f"{PREFIX}/admin/tenants/{{tenant_id}}/billing-config")
async def submit_config(request: Request, checked: CsrfChecked, session: Super,
                        tenant_id: str) -> Response:
    """Check the form field by field (422 page with field messages, nothing published), then
    submit it through `writes.submit_billing_config` (its 422 refusal mapped onto the fields),
    once per form token, and 303 back to the tab with the submission id."""
    ctx = context(request)
    config = await reads.get_billing_config(ctx, session.principal, tenant_id)
    values = admin_form.submitted(await request.form())
    body, errors = admin_form.parse(values, config.in_force)
    if body is not None:
        try:
            async with form_tokens.once(ctx.db, session, "config",
                                        (await request.form()).get(form_tokens.FIELD)) as cid:
                accepted = await writes.submit_billing_config(ctx, request, session.principal,
                                                              tenant_id, body, cid)
        except (form_tokens.Resubmitted, form_tokens.StaleForm) as why:
            return await not_run(request, session, tenant_id, why)
        except Problem as problem:
            if problem.status != 422:
                raise
            extra = problem.extensions.get("errors") if problem.extensions else None
            errors = (admin_form.errors_from_locs(extra) if extra
                      else admin_form.errors_from_detail(problem.detail or problem.title))
        else:
            return await back_to_tab(
                request, session, tenant_id,
                f"Configuration submitted (submission {accepted.submission_id}). It is listed "
                "in the configuration history once the invoicer has applied it.")
    return await tenant_page(request, session, tenant_id, status_code=422, values=values,
                             errors=errors)
