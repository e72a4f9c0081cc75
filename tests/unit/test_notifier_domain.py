"""Which email an invoice event calls for, and how it reads (no I/O)."""

from datetime import UTC, date, datetime
from email.message import EmailMessage

import pytest

from contracts import InvoiceIssued, InvoiceStatusChanged, LineItem
from services.notifier.domain import backoff_seconds, message_id, notification_for
from services.notifier.messages import compose_email

pytestmark = pytest.mark.unit


def issued_event(
    invoice_id: str = "inv-1", *, amount: int = 12345, currency: str = "USD",
    email: str = "billing@acme.example", notifications: bool = True, **changes: object,
) -> InvoiceIssued:
    """An `InvoiceIssued` for tenant `acme`, February 2024, due 2024-03-31."""
    fields: dict[str, object] = dict(
        invoice_id=invoice_id, invoice_number="INV-2024-0007", tenant_id="acme",
        amount=amount, currency=currency, issue_date=date(2024, 3, 1), due_date=date(2024, 3, 31),
        period_start=datetime(2024, 2, 1, tzinfo=UTC), period_end=datetime(2024, 3, 1, tzinfo=UTC),
        line_items=(LineItem(kind="flat_fee", description="Flat rate", amount=amount),),
        billing_email=email, email_notifications=notifications, config_version=1,
    )
    fields.update(changes)
    return InvoiceIssued.model_validate(fields)


def status_event(
    status: str, invoice_id: str = "inv-1", *, previous: str = "pending_payment",
    amount: int = 12345, currency: str = "USD", email: str = "billing@acme.example",
    notifications: bool = True, **changes: object,
) -> InvoiceStatusChanged:
    """An `InvoiceStatusChanged` of the invoice `issued_event` describes."""
    fields: dict[str, object] = dict(
        invoice_id=invoice_id, invoice_number="INV-2024-0007", tenant_id="acme",
        previous_status=previous, status=status, amount=amount, currency=currency,
        issue_date=date(2024, 3, 1), due_date=date(2024, 3, 31),
        period_start=datetime(2024, 2, 1, tzinfo=UTC), period_end=datetime(2024, 3, 1, tzinfo=UTC),
        billing_email=email, email_notifications=notifications,
    )
    if status == "paid":
        fields.update(paid_date=date(2024, 3, 5), payment_reference="pi_123",
                      payment_method="card visa 4242")
    fields.update(changes)
    return InvoiceStatusChanged.model_validate(fields)


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("event", "kind"), [
    (issued_event(), "invoice_issued"),
    (status_event("failed"), "payment_failed"),
    (status_event("overdue"), "overdue"),
    (status_event("paid", previous="failed"), "receipt"),
])
def test_each_invoice_event_calls_for_its_kind_of_email(event: object, kind: str) -> None:
    request = notification_for(event)  # type: ignore[arg-type]
    assert request is not None
    assert request.kind == kind
    assert request.notification_id == f"inv-1:{kind}"
    assert request.recipient == "billing@acme.example"


def test_a_transition_back_to_pending_payment_calls_for_no_email() -> None:
    assert notification_for(status_event("pending_payment", previous="failed")) is None


def test_the_message_id_is_the_same_for_the_same_notification() -> None:
    first = message_id("inv-1:receipt", "Billing <billing@platform.example>")
    assert first == message_id("inv-1:receipt", "billing@platform.example")
    assert first.endswith("@platform.example>")
    assert first != message_id("inv-1:overdue", "billing@platform.example")


def test_back_off_doubles_up_to_its_cap() -> None:
    assert [backoff_seconds(n, 0.5, 3) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(("amount", "currency", "shown"), [
    (12345, "USD", "$123.45"), (11268, "EUR", "€112.68"), (1496109, "KES", "KES 14,961.09"),
])
def test_an_invoice_email_shows_the_amount_for_its_currency_and_attaches_the_pdf(
    amount: int, currency: str, shown: str
) -> None:
    request = notification_for(issued_event(amount=amount, currency=currency))
    assert request is not None
    message = compose_email(request, sender="billing@platform.example")
    text, html = text_and_html(message)
    assert shown in text and shown in html
    assert "INV-2024-0007" in text and "Feb 1, 2024 - Feb 29, 2024" in text
    assert "Mar 31, 2024" in text and "https://billing.example/pay/INV-2024-0007" in text
    assert message["Subject"] == "Your invoice INV-2024-0007 is ready"
    [pdf] = list(message.iter_attachments())
    assert pdf.get_filename() == "INV-2024-0007.pdf"
    assert pdf.get_content().startswith(b"%PDF")  # type: ignore[attr-defined]


def test_a_receipt_shows_the_payment_and_has_no_attachment() -> None:
    request = notification_for(status_event("paid"))
    assert request is not None
    message = compose_email(request, sender="billing@platform.example")
    text, _ = text_and_html(message)
    assert "pi_123" in text and "card visa 4242" in text and "$123.45" in text
    assert list(message.iter_attachments()) == []


def test_html_emails_escape_what_they_show() -> None:
    request = notification_for(status_event("failed", reason="<script>x</script>"))
    assert request is not None
    _, html = text_and_html(compose_email(request, sender="billing@platform.example"))
    assert "<script>" not in html and "&lt;script&gt;" in html
