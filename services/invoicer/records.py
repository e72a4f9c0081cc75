"""Invoice documents <-> events and export rows, and the invoice builder (an issue's priced
draft -> the invoice document and its billed-usage records).

An invoice document keeps instants in UTC and dates as ISO strings (`YYYY-MM-DD`), plus the
tenant's `timezone`, so exports can show period bounds with the tenant's offset.
"""

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from contracts import BillingConfigSubmitted, InvoiceIssued, InvoiceStatusChanged, LineItem
from contracts.base import utc_now
from contracts.invoices import InvoiceStatus
from services.invoicer.domain import issued_event_id, status_event_id
from services.invoicer.late_usage import Superseded
from services.invoicer.ledger import Ledger
from services.invoicer.periods import Period, due_date, overdue_at
from services.invoicer.pricing import Draft, Line

Doc = dict[str, Any]


def line_doc(line: Line) -> Doc:
    """A priced line as stored (Decimals stay exact)."""
    return {
        "kind": line.kind, "description": line.description, "meter": line.meter,
        "quantity": line.quantity, "unit_price": line.unit_price, "amount": line.amount,
        "ref": line.ref,
    }


def _d(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def line_items(doc: Doc) -> tuple[LineItem, ...]:
    """The invoice's lines as contract `LineItem`s."""
    return tuple(
        LineItem(kind=li["kind"], description=li["description"], meter=li.get("meter"),
                 quantity=_d(li["quantity"]) or Decimal(1), unit_price=_d(li.get("unit_price")),
                 amount=int(li["amount"]))
        for li in doc["line_items"]
    )


def issued_event(doc: Doc) -> InvoiceIssued:
    """The `InvoiceIssued` event of an invoice document (deterministic event id; occurred at
    the issue instant on the billing clock)."""
    return InvoiceIssued(
        event_id=issued_event_id(doc["_id"]),
        occurred_at=doc["issued_at"],
        invoice_id=doc["_id"],
        invoice_number=doc["invoice_number"],
        tenant_id=doc["tenant_id"],
        amount=int(doc["amount"]),
        currency=doc["currency"],
        status=InvoiceStatus.pending_payment,
        issue_date=date.fromisoformat(doc["issue_date"]),
        due_date=date.fromisoformat(doc["due_date"]),
        period_start=doc["period_start"],
        period_end=doc["period_end"],
        line_items=line_items(doc),
        billing_email=doc["billing_email"],
        email_notifications=doc["email_notifications"],
        config_version=doc["config_version"],
        timezone=doc.get("timezone", "UTC"),
    )


def status_event(
    doc: Doc, previous: InvoiceStatus, status: InvoiceStatus, cause: str, at: datetime,
    reason: str | None = None,
) -> InvoiceStatusChanged:
    """The `InvoiceStatusChanged` event for `doc` (already carrying its new fields)."""
    return InvoiceStatusChanged(
        event_id=status_event_id(doc["_id"], status, cause),
        occurred_at=at,
        invoice_id=doc["_id"],
        invoice_number=doc["invoice_number"],
        tenant_id=doc["tenant_id"],
        previous_status=previous,
        status=status,
        amount=int(doc["amount"]),
        currency=doc["currency"],
        issue_date=date.fromisoformat(doc["issue_date"]),
        due_date=date.fromisoformat(doc["due_date"]),
        period_start=doc["period_start"],
        period_end=doc["period_end"],
        paid_date=date.fromisoformat(doc["paid_date"]) if doc.get("paid_date") else None,
        payment_reference=doc.get("payment_reference"),
        payment_method=doc.get("payment_method"),
        reason=reason,
        billing_email=doc["billing_email"],
        email_notifications=doc["email_notifications"],
        config_version=doc.get("config_version"),
    )


def _text(value: Any) -> str | None:
    return None if value is None else format(Decimal(str(value)), "f")


def export_row(doc: Doc) -> Doc:
    """One entry of the demo's `invoices.json`: amounts in minor units, period bounds
    ISO 8601 with the tenant's offset, quantity and unit price as decimal strings."""
    zone = ZoneInfo(doc["timezone"])
    return {
        "invoice_number": doc["invoice_number"],
        "tenant_id": doc["tenant_id"],
        "currency": doc["currency"],
        "amount": int(doc["amount"]),
        "status": doc["status"],
        "issue_date": doc["issue_date"],
        "due_date": doc["due_date"],
        "paid_date": doc.get("paid_date"),
        "payment_reference": doc.get("payment_reference"),
        "payment_method": doc.get("payment_method"),
        "period_start": doc["period_start"].astimezone(zone).isoformat(),
        "period_end": doc["period_end"].astimezone(zone).isoformat(),
        "line_items": [
            {"kind": li["kind"], "meter": li.get("meter"), "description": li["description"],
             "quantity": _text(li["quantity"]), "unit_price": _text(li.get("unit_price")),
             "amount": int(li["amount"])}
            for li in doc["line_items"]
        ],
    }


@dataclass(frozen=True)
class IssueDraft:
    """What one attempt of an issue read and priced, before it has a number: the period of
    `tenant_id`, the configuration (`config_version`) that priced it, the ledger as read
    (`ledger.rev` guards its update), the priced `draft`, each meter's `usage` total and the
    usage `marker` read before it, the late-usage records it supersedes, and the coupon's
    redemptions (`coupon_uses` by the tenant, `code_redemptions` by every tenant) as read."""

    invoice_id: str
    tenant_id: str
    period: Period
    config: BillingConfigSubmitted
    config_version: int
    ledger: Ledger
    draft: Draft
    usage: dict[str, Decimal]
    marker: int
    priced_at: datetime
    superseded: list[Superseded] = field(default_factory=list)
    coupon_uses: int = 0
    code_redemptions: int = 0


def build_invoice(issue: IssueDraft, number: str) -> Doc:
    """The invoice document of `issue` numbered `number`: pending payment, issued at the
    period's end on its local end date, due `payment_due_days` later and overdue at the end of
    the due date in the tenant's zone (docs/billing-periods.md, docs/design.md#statuses)."""
    config, period, s = issue.config, issue.period, issue.config.settings
    due = due_date(period.end_date, s.payment_due_days)
    return {
        "_id": issue.invoice_id, "invoice_number": number, "tenant_id": issue.tenant_id,
        "tenant_name": config.tenant_name, "currency": s.currency, "amount": issue.draft.total,
        "status": InvoiceStatus.pending_payment, "issue_date": period.end_date.isoformat(),
        "due_date": due.isoformat(), "paid_date": None, "payment_reference": None,
        "payment_method": None, "period_start": period.start, "period_end": period.end,
        "timezone": config.timezone, "issued_at": period.end,
        "overdue_at": overdue_at(due, config.timezone),
        "line_items": [line_doc(li) for li in issue.draft.lines],
        "usage": [{"meter": m, "quantity": q} for m, q in sorted(issue.usage.items())],
        "config_version": issue.config_version,
        "billing_email": s.billing_email,
        "email_notifications": s.email_notifications, "created_at": utc_now(),
        "history": [{"status": InvoiceStatus.pending_payment, "at": period.end,
                     "cause": "issued"}],
    }


def billed_records(issue: IssueDraft) -> list[Doc]:
    """One billed-usage record per priced meter (schema in `late_usage`), at `rev` 0 with the
    usage marker read before the usage."""
    period, config = issue.period, issue.config
    label = f"{period.start_date.isoformat()}..{period.end_date.isoformat()}"
    amounts = {li.meter: li.amount for li in issue.draft.lines if li.kind == "usage"}
    return [{
        "_id": f"{issue.tenant_id}|{period.start.isoformat()}|{charge.meter}",
        "tenant_id": issue.tenant_id, "meter": charge.meter, "period_start": period.start,
        "period_end": period.end, "period_label": label, "invoice_id": issue.invoice_id,
        "charge": charge.model_dump(mode="json"), "priced_at": issue.priced_at,
        "quantity": issue.usage.get(charge.meter, Decimal(0)), "amount": amounts[charge.meter],
        "currency": config.settings.currency, "usage_marker": issue.marker, "rev": 0,
    } for charge in config.price_plan.charges]
