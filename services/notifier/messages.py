"""Email composition: Jinja2 templates (plain text + HTML alternative) and the PDF attachment.

Templates live in `templates/` as package data: `<kind>.txt.j2` and `<kind>.html.j2` (the
HTML ones extend `base.html.j2` and are auto-escaped). Amounts are formatted with babel for the
currency and `email_locale` (`$123.45`, `€112.68`, `KES 14,961.09`), dates with babel's medium
format.
"""

from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path

from babel.dates import format_date
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from services.common.invoice_document import Seller
from services.common.invoice_pdf import format_money, render_invoice_pdf
from services.notifier.domain import NotificationRequest, message_id

TEMPLATES = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The template environment (strict: a missing variable is an error, not a blank)."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=lambda name: name is not None and name.endswith(".html.j2"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def template_context(
    request: NotificationRequest, *, locale: str, pay_link_template: str, seller_name: str
) -> dict[str, object]:
    """The variables every template sees, already formatted for `locale`."""

    def day(value: object) -> str | None:
        return format_date(value, format="medium", locale=locale) if value else None  # type: ignore[arg-type]

    period = f"{day(request.period_start.date())} - {day(request.period_last_day)}"
    return {
        "subject": request.subject,
        "kind": request.kind,
        "tenant_id": request.tenant_id,
        "invoice_id": request.invoice_id,
        "invoice_number": request.invoice_number,
        "amount": format_money(request.amount, request.currency, locale),
        "currency": request.currency,
        "period": period,
        "issue_date": day(request.issue_date),
        "due_date": day(request.due_date),
        "paid_date": day(request.paid_date),
        "payment_reference": request.payment_reference,
        "payment_method": request.payment_method,
        "reason": request.reason,
        "pay_link": pay_link_template.format(
            invoice_id=request.invoice_id, invoice_number=request.invoice_number
        ),
        "seller_name": seller_name,
    }


def compose_email(
    request: NotificationRequest,
    *,
    sender: str,
    locale: str = "en_US",
    pay_link_template: str = "https://billing.example/pay/{invoice_number}",
    seller_name: str = "Billing Platform",
    seller: Seller | None = None,
) -> EmailMessage:
    """The complete message for `request`: headers, text body, HTML alternative and, for an
    issued invoice, the invoice PDF (`<invoice number>.pdf`, headed by `seller`, else a seller
    named `seller_name`).

    Deterministic: the Message-ID derives from the notification id and the Date from the
    event's `occurred_at`, so a resend is the same message. Raises jinja2 errors for a broken
    template and `ValueError` for an unknown currency.
    """
    context = template_context(
        request, locale=locale, pay_link_template=pay_link_template, seller_name=seller_name
    )
    env = environment()
    message = EmailMessage()
    message["Subject"] = request.subject
    message["From"] = sender
    message["To"] = request.recipient
    message["Date"] = format_datetime(request.occurred_at)
    message["Message-ID"] = message_id(request.notification_id, sender)
    message["X-Billing-Notification"] = request.notification_id
    message["X-Billing-Tenant"] = request.tenant_id
    message.set_content(env.get_template(f"{request.kind}.txt.j2").render(context))
    message.add_alternative(
        env.get_template(f"{request.kind}.html.j2").render(context), subtype="html"
    )
    if request.issued is not None:
        pdf = render_invoice_pdf(request.issued, seller=seller or Seller(name=seller_name))
        message.add_attachment(
            pdf, maintype="application", subtype="pdf",
            filename=f"{request.invoice_number}.pdf",
        )
    return message
