"""The super's actions on a tenant's Billing tab: record a manual payment, grant a credit,
issue an invoice for an operator-issued tenant (docs/portal.md, "Admin console").

Each is a CSRF-checked form (a viewer's POST is a 403 page) that calls the API's own route
functions (`writes.record_payment`, `writes.grant_credit_once`, `operations.issue_invoice`),
so the action is validated, applied and audited exactly as through the API. A refusal
re-shows the tab with the field's message and what was typed (status 422 or the API's
404/409); success is a 303 back to the tab, which shows the outcome once (the session's
message). Each form runs once per one-time token (`form_tokens`): the same form posted again
does nothing and says so.
"""

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from contracts.money import to_minor_units
from services.api.models_writes import CreditBody, PaymentBody
from services.api.portal import form_tokens
from services.api.portal.admin_tenant import back_to_tab, not_run, tenant_page
from services.api.portal.sessions import PortalSession
from services.api.portal.web import PREFIX, CsrfChecked, Super, context
from services.api.problems import Problem
from services.api.routes import operations, reads, writes

router = APIRouter(include_in_schema=False)
METHODS = ("ach", "bank_transfer")


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _date(text: str, name: str, errors: dict[str, str]) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[name] = "Enter a date as YYYY-MM-DD."
        return None


async def _refused(request: Request, session: PortalSession, tenant_id: str, status: int,
                   errors: dict[str, str], values: dict[str, str], message: str) -> Response:
    return await tenant_page(request, session, tenant_id, status_code=status,
                             action_errors=errors, action_values=values,
                             action_message=message)


@router.post(f"{PREFIX}/admin/tenants/{{tenant_id}}/payments")
async def record_payment(request: Request, checked: CsrfChecked, session: Super,
                         tenant_id: str) -> Response:
    """Record an ACH or bank-transfer payment of one of the tenant's unpaid invoices."""
    form = await request.form()
    values = {n: _text(form, n) for n in ("payment_invoice", "payment_method",
                                          "payment_reference", "payment_paid_on")}
    errors: dict[str, str] = {}
    if not values["payment_invoice"]:
        errors["payment_invoice"] = "Choose an unpaid invoice."
    if values["payment_method"] not in METHODS:
        errors["payment_method"] = "Choose ACH or bank transfer."
    if not values["payment_reference"]:
        errors["payment_reference"] = "Enter the bank's reference."
    paid_on = _date(values["payment_paid_on"], "payment_paid_on", errors) \
        if values["payment_paid_on"] else None
    ctx = context(request)
    number = values["payment_invoice"]
    if number and "payment_invoice" not in errors:
        try:
            invoice = await reads.get_invoice(ctx, session.principal, number)
        except Problem:
            invoice = None
        if invoice is None or invoice.tenant_id != tenant_id:
            errors["payment_invoice"] = "That is not one of this tenant's invoices."
    if errors:
        return await _refused(request, session, tenant_id, 422, errors, values,
                              "The payment was not recorded.")
    try:
        async with form_tokens.once(ctx.db, session, "payment", form.get(form_tokens.FIELD)):
            body = PaymentBody(method=values["payment_method"],
                               reference=values["payment_reference"], paid_on=paid_on)
            await writes.record_payment(ctx, request, session.principal, number, body)
    except (form_tokens.Resubmitted, form_tokens.StaleForm) as why:
        return await not_run(request, session, tenant_id, why)
    except ValidationError as exc:
        errors["payment_reference"] = exc.errors()[0]["msg"]
        return await _refused(request, session, tenant_id, 422, errors, values,
                              "The payment was not recorded.")
    except Problem as problem:
        return await _refused(request, session, tenant_id, problem.status,
                              {"payment_invoice": problem.detail or problem.title}, values,
                              "The payment was not recorded.")
    return await back_to_tab(request, session, tenant_id, f"Payment recorded: {number} is paid.")


@router.post(f"{PREFIX}/admin/tenants/{{tenant_id}}/credits")
async def grant_credit(request: Request, checked: CsrfChecked, session: Super,
                       tenant_id: str) -> Response:
    """Grant a credit in the tenant's currency: an amount in major units and a reason."""
    form = await request.form()
    values = {n: _text(form, n) for n in ("credit_amount", "credit_reason")}
    ctx = context(request)
    currency = (await reads.get_tenant(ctx, session.principal, tenant_id)).currency
    errors: dict[str, str] = {}
    amount = 0
    try:
        major = Decimal(values["credit_amount"])
        amount = to_minor_units(major, currency) if major.is_finite() and major > 0 else 0
        if amount <= 0:
            errors["credit_amount"] = "Enter an amount greater than zero."
    except (InvalidOperation, ValueError):
        errors["credit_amount"] = f"Enter an amount in {currency}, such as 25.00."
    if not values["credit_reason"]:
        errors["credit_reason"] = "Say why the credit is granted."
    elif len(values["credit_reason"]) > 500:
        errors["credit_reason"] = "Keep the reason under 500 characters."
    if errors:
        return await _refused(request, session, tenant_id, 422, errors, values,
                              "The credit was not granted.")
    try:
        async with form_tokens.once(ctx.db, session, "credit",
                                    form.get(form_tokens.FIELD)) as command_id:
            accepted = await writes.grant_credit_once(
                ctx, request, session.principal, tenant_id,
                CreditBody(amount=amount, reason=values["credit_reason"]), command_id)
    except (form_tokens.Resubmitted, form_tokens.StaleForm) as why:
        return await not_run(request, session, tenant_id, why)
    return await back_to_tab(
        request, session, tenant_id,
        f"Credit granted (submission {accepted.submission_id}). It reduces the next invoices.")


@router.post(f"{PREFIX}/admin/tenants/{{tenant_id}}/invoices")
async def issue_invoice(request: Request, checked: CsrfChecked, session: Super,
                        tenant_id: str) -> Response:
    """Issue the invoice of the period ending on the given local date (operator-issued
    tenants; the API's rules, `POST /v1/tenants/{tenant_id}/invoices`)."""
    form = await request.form()
    values = {"issue_period_end": _text(form, "issue_period_end")}
    errors: dict[str, str] = {}
    end = _date(values["issue_period_end"], "issue_period_end", errors)
    if end is not None and not operations.FIRST_PERIOD_END <= end <= operations.LAST_PERIOD_END:
        errors["issue_period_end"] = (f"Enter a date from {operations.FIRST_PERIOD_END} to "
                                      f"{operations.LAST_PERIOD_END}.")
    if end is None or errors:
        return await _refused(request, session, tenant_id, 422, errors, values,
                              "No invoice was issued.")
    response = Response()
    try:
        async with form_tokens.once(context(request).db, session, "issue",
                                    form.get(form_tokens.FIELD)):
            issued = await operations.issue_invoice(
                context(request), request, response, session.principal, tenant_id,
                operations.IssueBody(period_end=end))
    except (form_tokens.Resubmitted, form_tokens.StaleForm) as why:
        return await not_run(request, session, tenant_id, why)
    except Problem as problem:
        return await _refused(request, session, tenant_id, problem.status,
                              {"issue_period_end": problem.detail or problem.title}, values,
                              "No invoice was issued.")
    if issued.outcome == "issued":
        text = f"Invoice {issued.invoice_number} issued."
    else:
        text = f"That period is invoiced already ({issued.invoice_number or end})."
    return await back_to_tab(request, session, tenant_id, text)
