"""The shared invoice PDF renderer and money formatter."""

import re
import zlib
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from contracts import InvoiceIssued, LineItem
from services.common.invoice_pdf import format_money, pdf_safe_text, render_invoice_pdf

pytestmark = pytest.mark.unit


def make_invoice(currency: str = "USD", amount: int = 12345, **changes: object) -> InvoiceIssued:
    fields: dict[str, object] = dict(
        invoice_id="inv-1", invoice_number="INV-2024-0007", tenant_id="acme",
        amount=amount, currency=currency, issue_date=date(2024, 3, 1), due_date=date(2024, 3, 31),
        period_start=datetime(2024, 2, 1, tzinfo=UTC), period_end=datetime(2024, 3, 1, tzinfo=UTC),
        line_items=(
            LineItem(kind="flat_fee", description="Flat rate", amount=amount + 500),
            LineItem(kind="usage", description="CPU", meter="cpu_hours", service="api",
                     quantity=Decimal("12.5"), unit_price=Decimal("0.04"), amount=50),
            LineItem(kind="coupon", description="Coupon WELCOME-XYZ", amount=-550),
        ),
        billing_email="billing@acme.example", email_notifications=True, config_version=1,
    )
    fields.update(changes)
    return InvoiceIssued.model_validate(fields)


def page_text(pdf: bytes) -> str:
    """Every content stream of `pdf`, inflated, as latin-1 text."""
    chunks = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        raw = match.group(1)
        try:
            chunks.append(zlib.decompressobj().decompress(raw).decode("latin-1"))
        except zlib.error:
            chunks.append(raw.decode("latin-1"))
    return "".join(chunks)


@pytest.mark.parametrize(("currency", "amount"), [
    ("USD", 12345), ("EUR", 11268), ("KES", 1496109), ("JPY", 15000),
])
def test_an_invoice_renders_as_a_pdf_showing_its_number_and_total(
    currency: str, amount: int
) -> None:
    pdf = render_invoice_pdf(make_invoice(currency, amount), tenant_name="Acme Ltd")
    assert pdf.startswith(b"%PDF")
    text = page_text(pdf)
    assert "INV-2024-0007" in text
    assert "Acme Ltd" in text
    total = format_money(amount, currency).encode("cp1252").decode("latin-1")
    assert total in text


def test_the_same_invoice_renders_to_the_same_bytes() -> None:
    invoice = make_invoice()
    assert render_invoice_pdf(invoice) == render_invoice_pdf(invoice)


def test_a_tenant_name_outside_latin_1_still_renders() -> None:
    pdf = render_invoice_pdf(make_invoice(), tenant_name="Łódź 株式会社 Ωmega")
    assert pdf.startswith(b"%PDF")
    assert "Lódz" in page_text(pdf)


def test_a_paid_invoice_shows_its_payment_details() -> None:
    pdf = render_invoice_pdf(
        make_invoice(), status="paid", paid_date=date(2024, 3, 5),
        payment_reference="pi_123", payment_method="card visa 4242",
    )
    text = page_text(pdf)
    assert "pi_123" in text and "5 Mar 2024" in text and "Paid" in text


@pytest.mark.parametrize(("minor", "currency", "expected"), [
    (12345, "USD", "$123.45"),
    (11268, "EUR", "€112.68"),
    (1496109, "KES", "KES 14,961.09"),
    (1500, "JPY", "¥1,500"),
    (-500, "USD", "-$5.00"),
])
def test_money_is_formatted_for_its_currency(minor: int, currency: str, expected: str) -> None:
    assert format_money(minor, currency) == expected


def test_text_outside_the_pdf_code_page_degrades_to_ascii_or_a_question_mark() -> None:
    assert pdf_safe_text("Zürich Łódź 株") == "Zürich Lódz ?"


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [(1234567, "IQD", "IQD 1,234.567"), (123456, "LAK", "LAK 1,234.56"),
     (9999, "RSD", "RSD 99.99")],
)
def test_money_is_displayed_exactly_where_cldr_shows_fewer_digits_than_iso_4217(
    minor: int, currency: str, expected: str
) -> None:
    assert format_money(minor, currency) == expected
