"""The invoice PDF as finance staff see it: a real invoice (priced by the invoicer's own
pricing, rendered through the invoicer's `pdf_bytes`) rasterised with `pdftoppm` and read back
with `pdftotext -layout`, and a 200-line invoice that needs several pages, each with the
table's header row. poppler-utils (`make system-tools`) provides both tools; a test fails,
not skips, without them."""

import shutil
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from contracts import Coupon, InvoiceIssued, LineItem, PriceCharge
from services.common.invoice_document import Seller
from services.common.invoice_pdf import TABLE_HEADINGS, render_invoice_pdf
from services.invoicer.api import pdf_bytes
from services.invoicer.document import usage_pricing
from services.invoicer.pricing import CreditBalance, compose_invoice
from services.invoicer.records import line_doc

pytestmark = pytest.mark.unit

INITECH_PLAN = [PriceCharge.model_validate(c) for c in (
    {"meter": "cpu_hours", "model": "graduated",
     "tiers": [{"up_to": "500", "unit_price": "5.00"}, {"up_to": None, "unit_price": "4.00"}]},
    {"meter": "memory_gb_hours", "model": "per_unit", "unit_price": "0.60"},
    {"meter": "bandwidth_gb", "model": "per_unit", "unit_price": "10.00"},
)]
SELLER = Seller("Cloud Co Ltd", "1 Main Street\nNairobi 00100", "KE-P051234567X")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: `make system-tools` installs poppler-utils")
    return found


def pdftotext(pdf: Path) -> str:
    return subprocess.run([tool("pdftotext"), "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True, timeout=60).stdout


def initech_invoice() -> dict[str, Any]:
    """INV-2013-0008 as the invoicer stores it: initech's quarter from 15 June in Nairobi."""
    coupon = Coupon.model_validate({"code": "WELCOME10", "amount_off": 1000,
                                    "duration": "once"})
    credit = CreditBalance("cr-1", 2500, datetime(2013, 7, 1, tzinfo=UTC), "goodwill")
    draft = compose_invoice(
        currency="KES", flat_rate_amount=4900, charges=INITECH_PLAN,
        usage={"cpu_hours": Decimal("1043.384722"), "memory_gb_hours": Decimal("2045.5"),
               "bandwidth_gb": Decimal("12.75")},
        coupon=coupon, credits=[credit], issued_at=datetime(2013, 9, 14, 21, tzinfo=UTC))
    end = datetime(2013, 9, 14, 21, tzinfo=UTC)
    return {
        "_id": "inv-8", "invoice_number": "INV-2013-0008", "tenant_id": "initech",
        "tenant_name": "Initech", "currency": "KES", "amount": draft.total,
        "status": "pending_payment", "issue_date": "2013-09-15", "due_date": "2013-09-29",
        "paid_date": None, "payment_reference": None, "payment_method": None,
        "period_start": datetime(2013, 6, 14, 21, tzinfo=UTC), "period_end": end,
        "timezone": "Africa/Nairobi", "issued_at": end,
        "line_items": [line_doc(li) for li in draft.lines], "config_version": 1,
        "billing_email": "billing@initech.example", "email_notifications": True,
    }


def test_a_real_invoice_renders_to_an_image_and_reads_as_finance_staff_expect(
    tmp_path: Path,
) -> None:
    doc = initech_invoice()
    pdf = tmp_path / "INV-2013-0008.pdf"
    pdf.write_bytes(pdf_bytes(doc, render_invoice_pdf, seller=SELLER,
                              pricing=usage_pricing(INITECH_PLAN, doc)))
    subprocess.run([tool("pdftoppm"), "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf),
                    str(tmp_path / "page")], check=True, timeout=60)
    png = (tmp_path / "page-1.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5_000

    text = pdftotext(pdf)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    expected = [
        "Cloud Co Ltd INVOICE", "1 Main Street", "Nairobi 00100", "Tax ID: KE-P051234567X",
        "Period 15 Jun 2013 - 14 Sep 2013 (Africa/Nairobi)",
        "Description Quantity Unit price Amount",
        "Flat fee 1 KES 49.00 KES 49.00",
        "CPU, graduated tiers 1,043.384722 vCPU-hours KES 4,673.54",
        "Tier 1: up to 500 vCPU-hours 500 vCPU-hours KES 5.00 KES 2,500.00",
        "Tier 2: over 500 vCPU-hours 543.384722 vCPU-hours KES 4.00 KES 2,173.54",
        "Memory 2,045.5 GB-hours KES 0.60 KES 1,227.30",
        "Bandwidth 12.75 GB KES 10.00 KES 127.50",
        "Subtotal KES 6,077.34", "Coupon WELCOME10 -KES 10.00", "Credit: goodwill -KES 25.00",
        "Total due KES 6,042.34", "Page 1 of 1",
    ]
    for line in expected:
        assert line in lines, f"{line!r} not in:\n{text}"
    assert "cpu_hours" not in text and "to 2013-09-14" not in text


def test_a_200_line_invoice_repeats_the_table_header_on_every_page(tmp_path: Path) -> None:
    items = [LineItem(kind="usage", description=f"vm-{n:03d} cpu_hours (per unit)",
                      meter="cpu_hours", quantity=Decimal(n) + Decimal("0.25"),
                      unit_price=Decimal("0.04"), amount=4 * n + 1) for n in range(1, 201)]
    invoice = InvoiceIssued.model_validate(dict(
        invoice_id="inv-big", invoice_number="INV-2024-0200", tenant_id="acme",
        amount=sum(i.amount for i in items), currency="USD", issue_date="2024-02-01",
        due_date="2024-02-15", period_start=datetime(2024, 1, 1, tzinfo=UTC),
        period_end=datetime(2024, 2, 1, tzinfo=UTC), line_items=items,
        billing_email="billing@acme.example", email_notifications=True, config_version=1))
    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(render_invoice_pdf(invoice, seller=SELLER))

    pages = [page for page in pdftotext(pdf).split("\f") if page.strip()]
    assert sum("vm-" in page for page in pages) >= 3
    heading = " ".join(TABLE_HEADINGS)
    for number, page in enumerate(pages, start=1):
        lines = [" ".join(line.split()) for line in page.splitlines()]
        if "vm-" in page:  # every page of the table starts with its header row
            assert heading in lines, f"page {number} has no header row:\n{page}"
        assert f"Page {number} of {len(pages)}" in lines
        if number > 1:
            assert "Invoice INV-2024-0200 (continued)" in lines
    found = [f"vm-{n:03d}" for n in range(1, 201) if sum(p.count(f"vm-{n:03d} ") for p in pages)]
    assert len(found) == 200  # every line, none lost at a page break
    assert "Period 1 Jan 2024 - 31 Jan 2024" in " ".join(pages[0].split())
    assert "Total due $" in " ".join(pages[-1].split())
