"""The invoice PDF every service renders the same way (email attachment, portal download).

`render_invoice_pdf` draws one A4 page per invoice with fpdf2's core fonts (pure Python, no
font files): seller and tenant, invoice number, dates, period, line items, coupon and credit
lines, total and status. Core fonts only cover Windows-1252, so every text is passed through
`pdf_safe_text` first: any tenant name renders, characters outside the code page degrade to
their closest ASCII form or `?`. Output is deterministic for the same input (fixed creation
date, no random ids), so the same invoice always yields the same bytes.

`format_money` is the one money formatter for documents and emails (babel, CLDR data).
"""

import re
import unicodedata
from datetime import UTC, date, datetime, time
from decimal import Decimal

from babel.numbers import format_currency
from fpdf import FPDF

from contracts.invoices import InvoiceIssued, LineItem
from contracts.money import to_major_units

#: Code page of fpdf2's core fonts once `core_fonts_encoding` is set (adds the euro sign).
PDF_ENCODING = "cp1252"
DEFAULT_LOCALE = "en_US"
_SYMBOL_BEFORE_DIGIT = re.compile(r"(?<=[A-Za-z])(?=[\d-])")
#: Letters without a Unicode decomposition, mapped to their usual ASCII transliteration.
_TRANSLITERATIONS = str.maketrans({"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "ı": "i", "Ħ": "H",
                                   "ħ": "h", "ŀ": "l", "Ŀ": "L", "ŉ": "n"})
_STATUS_LABELS = {
    "pending_payment": "Pending payment",
    "paid": "Paid",
    "failed": "Payment failed",
    "overdue": "Overdue",
}


def format_money(minor: int, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """Format `minor` units of `currency` for `locale` with babel: `$123.45`, `€112.68`,
    `KES 14,961.09`, `¥1,500`, `-$5.00`.

    Babel does not apply CLDR's `currencySpacing` rule (a space between an alphabetic symbol
    such as `KES` and the digits); it is applied here, with a plain space.
    Raises `ValueError` for an unknown currency.
    """
    # Exact: never rounded to CLDR's display digits (IQD, LAK, RSD have fewer than ISO 4217).
    text = format_currency(to_major_units(minor, currency), currency, locale=locale,
                           decimal_quantization=False)
    return _SYMBOL_BEFORE_DIGIT.sub(" ", text, count=1)


def pdf_safe_text(text: str) -> str:
    """`text` reduced to what the PDF core fonts can draw (Windows-1252): characters outside it
    are decomposed (NFKD) and kept if their base form fits (`ő` -> `o`), else become `?`."""
    out = []
    for char in text.translate(_TRANSLITERATIONS):
        try:
            char.encode(PDF_ENCODING)
            out.append(char)
            continue
        except UnicodeEncodeError:
            pass
        base = unicodedata.normalize("NFKD", char).encode(PDF_ENCODING, "ignore").decode(
            PDF_ENCODING
        )
        out.append(base if base.strip() else "?")
    return "".join(out)


def _quantity(value: Decimal) -> str:
    text = format(value.normalize(), "f") if value == value.to_integral_value() else str(value)
    return text if "." not in text else text.rstrip("0").rstrip(".")


class _InvoicePdf(FPDF):
    def __init__(self) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.core_fonts_encoding = PDF_ENCODING
        self.set_auto_page_break(auto=True, margin=15)
        self.set_margins(15, 15, 15)

    def text_cell(self, width: float, text: str, *, align: str = "L", bold: bool = False,
                  size: float = 9, line: bool = False) -> None:
        self.set_font("Helvetica", "B" if bold else "", size)
        self.cell(width, 6, pdf_safe_text(text), border="B" if line else 0, align=align)

    def newline(self, height: float = 6) -> None:
        self.ln(height)


def _line_rows(invoice: InvoiceIssued) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for item in invoice.line_items:
        rows.append(_line_row(item, invoice.currency))
    return rows


def _line_row(item: LineItem, currency: str) -> tuple[str, str, str, str, str]:
    description = item.description
    if item.service:
        description = f"{description} ({item.service})"
    unit = "" if item.unit_price is None else f"{item.unit_price.normalize():f} {currency}"
    return (
        item.kind.replace("_", " "),
        description,
        _quantity(item.quantity),
        unit,
        format_money(item.amount, currency),
    )


def render_invoice_pdf(
    invoice: InvoiceIssued,
    *,
    status: str = "pending_payment",
    paid_date: date | None = None,
    payment_reference: str | None = None,
    payment_method: str | None = None,
    tenant_name: str | None = None,
    seller_name: str = "Billing Platform",
) -> bytes:
    """The invoice as PDF bytes (starting with `%PDF`), one document per call.

    `status` and the payment fields describe the invoice now (an issued invoice is
    `pending_payment`; a receipt passes `paid` with the payment details). Unit prices are shown
    in major units as priced; amounts in the currency's minor units formatted by
    `format_money`. Deterministic: the same arguments give the same bytes. Never raises for
    text content (see `pdf_safe_text`); raises `ValueError` only for an unknown currency.
    """
    pdf = _InvoicePdf()
    issued_at = datetime.combine(invoice.issue_date, time(0), tzinfo=UTC)
    pdf.set_creation_date(issued_at)
    pdf.set_title(pdf_safe_text(f"Invoice {invoice.invoice_number}"))
    pdf.set_author(pdf_safe_text(seller_name))
    pdf.set_producer("billing-platform")
    pdf.add_page()
    _header(pdf, invoice, seller_name, tenant_name)
    _lines(pdf, invoice)
    _totals(pdf, invoice, status, paid_date, payment_reference, payment_method)
    return bytes(pdf.output())


def _header(pdf: _InvoicePdf, invoice: InvoiceIssued, seller: str, tenant: str | None) -> None:
    pdf.text_cell(110, seller, bold=True, size=14)
    pdf.text_cell(0, "INVOICE", bold=True, size=14, align="R")
    pdf.newline(10)
    facts = [
        ("Invoice number", invoice.invoice_number),
        ("Bill to", tenant or invoice.tenant_id),
        ("Tenant id", invoice.tenant_id),
        ("Billing email", str(invoice.billing_email)),
        ("Issue date", invoice.issue_date.isoformat()),
        ("Due date", invoice.due_date.isoformat()),
        ("Period", f"{invoice.period_start.date().isoformat()} to "
                   f"{invoice.period_end.date().isoformat()}"),
        ("Currency", invoice.currency),
    ]
    for label, value in facts:
        pdf.text_cell(40, label, bold=True)
        pdf.text_cell(0, value)
        pdf.newline()
    pdf.newline(4)


_WIDTHS = (24, 78, 20, 30, 28)


def _lines(pdf: _InvoicePdf, invoice: InvoiceIssued) -> None:
    titles = ("Kind", "Description", "Quantity", "Unit price", "Amount")
    for width, title, align in zip(_WIDTHS, titles, "LLRRR", strict=True):
        pdf.text_cell(width, title, bold=True, line=True, align=align)
    pdf.newline()
    for row in _line_rows(invoice):
        for width, text, align in zip(_WIDTHS, row, "LLRRR", strict=True):
            pdf.text_cell(width, _fit(pdf, text, width), align=align)
        pdf.newline()
    if not invoice.line_items:
        pdf.text_cell(0, "No charges in this period.")
        pdf.newline()


def _fit(pdf: _InvoicePdf, text: str, width: float) -> str:
    pdf.set_font("Helvetica", "", 9)
    safe = pdf_safe_text(text)
    if pdf.get_string_width(safe) <= width - 2:
        return safe
    while safe and pdf.get_string_width(safe + "...") > width - 2:
        safe = safe[:-1]
    return safe + "..."


def _totals(pdf: _InvoicePdf, invoice: InvoiceIssued, status: str, paid_date: date | None,
            reference: str | None, method: str | None) -> None:
    pdf.newline(2)
    discounts = sum(i.amount for i in invoice.line_items if i.kind in ("coupon", "credit"))
    if discounts:
        pdf.text_cell(152, "Coupons and credits", align="R")
        pdf.text_cell(28, format_money(discounts, invoice.currency), align="R")
        pdf.newline()
    pdf.text_cell(152, "Total due", bold=True, size=11, align="R")
    pdf.text_cell(28, format_money(invoice.amount, invoice.currency), bold=True, size=11,
                  align="R")
    pdf.newline(10)
    pdf.text_cell(40, "Status", bold=True)
    pdf.text_cell(0, _STATUS_LABELS.get(status, status))
    pdf.newline()
    for label, value in (("Paid on", paid_date.isoformat() if paid_date else None),
                         ("Payment reference", reference), ("Payment method", method)):
        if value:
            pdf.text_cell(40, label, bold=True)
            pdf.text_cell(0, value)
            pdf.newline()
    if status != "paid":
        pdf.newline(4)
        pdf.text_cell(0, f"Please pay by {invoice.due_date.isoformat()}, quoting "
                         f"{invoice.invoice_number}.")
