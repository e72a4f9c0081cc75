"""Invoice documents <-> events and export rows.

An invoice document keeps instants in UTC and dates as ISO strings (`YYYY-MM-DD`), plus the
tenant's `timezone`, so exports can show period bounds with the tenant's offset.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from contracts import InvoiceIssued, InvoiceStatusChanged, LineItem
from contracts.invoices import InvoiceStatus
from services.invoicer.domain import issued_event_id, status_event_id
from services.invoicer.pricing import Line

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
