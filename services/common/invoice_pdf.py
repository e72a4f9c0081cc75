"""The invoice PDF every service renders the same way (email attachment, portal download, the
demo's files), drawing the `InvoiceDocument` of `services.common.invoice_document`.

Layout (A4, docs/invoicing.md, "The invoice document"): the seller's name, address and tax id
and "INVOICE"; the invoice's facts (number, bill-to, dates, period in the tenant's time zone);
the line-item table (Description, Quantity, Unit price, Amount) whose header row is repeated
on every page a long invoice needs; the subtotal, coupon and credits, total; status and
payment. Later pages start with "Invoice N (continued)"; every page ends with "Page i of n".

fpdf2's core fonts are pure Python (no font files) but only cover Windows-1252, so every text
is passed through `pdf_safe_text` first: any tenant name renders, characters outside the code
page degrade to their closest ASCII form or `?`. Output is deterministic for the same input
(fixed creation date, no random ids), so the same invoice always yields the same bytes.
"""

import unicodedata
from collections.abc import Mapping
from datetime import UTC, date, datetime, time

from fpdf import FPDF, FontFace

from contracts.invoices import InvoiceIssued
from services.common.invoice_document import (
    InvoiceDocument,
    Seller,
    UsagePricing,
    build_document,
)
from services.common.money_format import DEFAULT_LOCALE, format_money

__all__ = ["DEFAULT_LOCALE", "PDF_ENCODING", "TABLE_HEADINGS", "format_money",
           "pdf_safe_text", "render_invoice_pdf"]

#: Code page of fpdf2's core fonts once `core_fonts_encoding` is set (adds the euro sign).
PDF_ENCODING = "cp1252"
#: The line-item table's header row, repeated on every page.
TABLE_HEADINGS = ("Description", "Quantity", "Unit price", "Amount")
_WIDTHS = (66, 50, 30, 34)
_ALIGN = ("LEFT", "RIGHT", "RIGHT", "RIGHT")
#: Letters without a Unicode decomposition, mapped to their usual ASCII transliteration.
_TRANSLITERATIONS = str.maketrans({"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "ı": "i", "Ħ": "H",
                                   "ħ": "h", "ŀ": "l", "Ŀ": "L", "ŉ": "n"})
_DETAIL = FontFace(emphasis="ITALICS", color=(80, 80, 80), size_pt=8)


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


class _InvoicePdf(FPDF):
    def __init__(self, number: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.number = number
        self.core_fonts_encoding = PDF_ENCODING
        self.set_auto_page_break(auto=True, margin=18)
        self.set_margins(15, 15, 15)

    def header(self) -> None:
        if self.page_no() > 1:
            self.text_cell(0, f"Invoice {self.number} (continued)", bold=True)
            self.ln(8)

    def footer(self) -> None:
        self.set_y(-12)
        self.text_cell(0, f"Page {self.page_no()} of {{nb}}", align="C", size=8)

    def text_cell(self, width: float, text: str, *, align: str = "L", bold: bool = False,
                  size: float = 9) -> None:
        self.set_font("Helvetica", "B" if bold else "", size)
        self.cell(width, 6, pdf_safe_text(text), align=align)


def render_invoice_pdf(
    invoice: InvoiceIssued,
    *,
    status: str = "pending_payment",
    paid_date: date | None = None,
    payment_reference: str | None = None,
    payment_method: str | None = None,
    tenant_name: str | None = None,
    seller_name: str = "Billing Platform",
    seller: Seller | None = None,
    pricing: Mapping[str, UsagePricing] | None = None,
) -> bytes:
    """The invoice as PDF bytes (starting with `%PDF`), one document per call.

    `status` and the payment fields describe the invoice now (an issued invoice is
    `pending_payment`; a receipt passes `paid` with the payment details). `seller` (else a
    seller named `seller_name`) heads the document; `pricing` (meter -> `UsagePricing`) adds
    each usage line's tiers. Deterministic: the same arguments give the same bytes. Never
    raises for text content (see `pdf_safe_text`); raises `ValueError` only for an unknown
    currency.
    """
    document = build_document(
        invoice, status=status, paid_date=paid_date, payment_reference=payment_reference,
        payment_method=payment_method, tenant_name=tenant_name,
        seller=seller or Seller(name=seller_name), pricing=pricing)
    pdf = _InvoicePdf(document.number)
    pdf.set_creation_date(datetime.combine(invoice.issue_date, time(0), tzinfo=UTC))
    pdf.set_title(pdf_safe_text(f"Invoice {document.number}"))
    pdf.set_author(pdf_safe_text(document.seller.name))
    pdf.set_producer("billing-platform")
    pdf.add_page()
    _header(pdf, document)
    _lines(pdf, document)
    _totals(pdf, document)
    return bytes(pdf.output())


def _header(pdf: _InvoicePdf, document: InvoiceDocument) -> None:
    seller = document.seller
    pdf.text_cell(120, seller.name, bold=True, size=14)
    pdf.text_cell(0, "INVOICE", bold=True, size=14, align="R")
    pdf.ln(7)
    for line in seller.address_lines():
        pdf.text_cell(0, line)
        pdf.ln(5)
    if seller.tax_id:
        pdf.text_cell(0, f"Tax ID: {seller.tax_id}")
        pdf.ln(5)
    pdf.ln(4)
    for label, value in document.facts:
        pdf.text_cell(40, label, bold=True)
        pdf.text_cell(0, value)
        pdf.ln(6)
    pdf.ln(4)


def _lines(pdf: _InvoicePdf, document: InvoiceDocument) -> None:
    pdf.set_font("Helvetica", "", 9)
    with pdf.table(col_widths=_WIDTHS, text_align=_ALIGN, borders_layout="HORIZONTAL_LINES",
                   line_height=4.6, repeat_headings=1, width=sum(_WIDTHS),
                   padding=(0.7, 1, 0.7, 1)) as table:
        table.row([pdf_safe_text(t) for t in TABLE_HEADINGS])
        for row in document.rows:
            texts = (("   " if row.detail else "") + row.description, row.quantity,
                     row.unit_price, row.amount)
            table.row([pdf_safe_text(t) for t in texts], style=_DETAIL if row.detail else None)
        if not document.rows:
            table.row(["No charges in this period.", "", "", ""])


def _amount_line(pdf: _InvoicePdf, label: str, amount: str, *, bold: bool = False,
                 size: float = 9) -> None:
    pdf.text_cell(sum(_WIDTHS) - _WIDTHS[-1], label, align="R", bold=bold, size=size)
    pdf.text_cell(_WIDTHS[-1], amount, align="R", bold=bold, size=size)
    pdf.ln(6)


def _totals(pdf: _InvoicePdf, document: InvoiceDocument) -> None:
    pdf.ln(2)
    _amount_line(pdf, "Subtotal", document.subtotal)
    for label, amount in document.reductions:
        _amount_line(pdf, label, amount)
    _amount_line(pdf, "Total due", document.total, bold=True, size=11)
    pdf.ln(6)
    for label, value in document.payment:
        pdf.text_cell(40, label, bold=True)
        pdf.text_cell(0, value)
        pdf.ln(6)
    if document.note:
        pdf.ln(4)
        pdf.text_cell(0, document.note)
