"""The admin console's actions and dashboard against the real broker and database: issue an
invoice for an operator-issued tenant, record a manual payment, grant a credit (each refused
with a field message when invalid, audited when done), and Administration -> Billing with its
counts over all tenants and the dead letters of the last 24 hours (docs/portal.md, "Admin
console")."""

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from services.api.audit import COLLECTION as API_AUDIT
from services.api.portal import routes_admin
from services.invoicer.api import run_cycle
from services.invoicer.settings import InvoicerSettings
from services.payments.adapters.mongo_store import MongoPaymentsStore
from services.payments.domain import InvoiceRecord
from tests.integration.test_api_operations import publish_dead_letter
from tests.integration.test_invoicer_support import open_store, utc
from tests.integration.test_portal_admin import form_data, seed, sign_in
from tests.support.api import ApiHarness
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
PAGE = "/portal/admin/tenants/initech"


async def _audited(api: ApiHarness, action: str) -> list[dict[str, Any]]:
    return await api.ctx.db[API_AUDIT].find({"action": action}).to_list()


async def _post(api: ApiHarness, action: str, **data: str) -> Any:
    """Post the form to `.../{action}` of a freshly rendered page (its own one-time token)."""
    page = (await api.client.get(PAGE)).text
    return await api.client.post(f"{PAGE}/{action}", data=form_data(page, action, **data))


def _error(page: str, name: str) -> str:
    found = re.search(rf'<p class="field-error" id="{name}-error" role="alert">([^<]*)</p>',
                      page)
    assert found, name
    return found.group(1)


async def _payable(api: ApiHarness, number: str) -> None:
    """Let the payments service know the invoice (as its worker would from InvoiceIssued)."""
    async with open_store(InvoicerSettings()) as store:
        doc = await store.invoices.find_one({"invoice_number": number})
    assert doc is not None
    payments = MongoPaymentsStore(api.ctx.client, api.ctx.db)
    await payments.ensure_indexes()
    await payments.commit(record=InvoiceRecord(
        invoice_id=doc["_id"], invoice_number=number, tenant_id="initech",
        amount=int(doc["amount"]), currency=doc["currency"],
        issued_at=datetime(2013, 7, 1, tzinfo=UTC)))


async def test_a_super_issues_an_invoice_records_its_payment_and_grants_a_credit(
    api: ApiHarness,
) -> None:
    await seed(("initech", {"settings": {"auto_generate_invoices": False},
                            "timezone": "Africa/Nairobi"}))
    await sign_in(api, "super")
    assert "Issue invoice" in (await api.client.get(PAGE)).text

    bad_date = await _post(api, "invoices", issue_period_end="01/07/2013")
    assert bad_date.status_code == 422 and "YYYY-MM-DD" in _error(bad_date.text, "issue_period_end")
    off_grid = await _post(api, "invoices", issue_period_end="2013-07-15")
    assert off_grid.status_code == 409
    assert "no billing period" in _error(off_grid.text, "issue_period_end")
    assert 'value="2013-07-15"' in off_grid.text  # what was typed stays
    issued = await _post(api, "invoices", issue_period_end="2013-07-01")
    assert issued.status_code == 303
    page = (await api.client.get(issued.headers["location"])).text
    number = re.search(r"Invoice (INV-\d{4}-\d{4}) issued", page)
    assert number, page
    number_text = number.group(1)
    history = page.split("<caption>Invoice history</caption>")[1].split("</table>")[0]
    assert f'href="/portal/tenants/initech/invoices/{number_text}"' in history
    assert "2013-06-01 to 2013-06-30" in history and "Unpaid" in history
    again = await _post(api, "invoices", issue_period_end="2013-07-01")
    shown = (await api.client.get(again.headers["location"])).text
    assert f"invoiced already ({number_text})" in shown
    [issue] = await _audited(api, "invoice.issue")
    assert issue["change"]["invoice_number"] == number_text

    await _payable(api, number_text)
    assert f'<option value="{number_text}">' in (await api.client.get(PAGE)).text
    no_reference = await _post(api, "payments", payment_invoice=number_text,
                               payment_method="ach", payment_reference="")
    assert no_reference.status_code == 422
    assert _error(no_reference.text, "payment_reference") == "Enter the bank&#39;s reference."
    paid = await _post(api, "payments", payment_invoice=number_text,
                       payment_method="bank_transfer", payment_reference="WIRE-42",
                       payment_paid_on="2013-07-09")
    assert paid.status_code == 303 and paid.headers["location"] == PAGE
    assert f"Payment recorded: {number_text} is paid." in \
        (await api.client.get(PAGE)).text
    twice = await _post(api, "payments", payment_invoice=number_text,
                        payment_method="ach", payment_reference="WIRE-43")
    assert twice.status_code == 409 and "paid" in _error(twice.text, "payment_invoice")
    [payment] = await _audited(api, "payment.record")
    assert payment["change"]["reference"] == "WIRE-42" and payment["tenant_id"] == "initech"
    other = await _post(api, "payments", payment_invoice="INV-1999-0001",
                        payment_method="ach", payment_reference="X")
    assert other.status_code == 422

    for amount, message in (("abc", "Enter an amount in USD"),
                            ("12.345", "Enter an amount in USD"),
                            ("0", "greater than zero")):
        refused = await _post(api, "credits", credit_amount=amount, credit_reason="goodwill")
        assert refused.status_code == 422 and message in _error(refused.text, "credit_amount")
    granted = await _post(api, "credits", credit_amount="25.00", credit_reason="late delivery")
    assert granted.status_code == 303
    assert "Credit granted" in (await api.client.get(granted.headers["location"])).text
    [credit] = await _audited(api, "credit.grant")
    assert credit["change"]["amount"] == 2500 and credit["change"]["reason"] == "late delivery"


async def test_the_dashboard_counts_every_tenant_not_the_visible_page(
    api: ApiHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await seed(("acme", {}), ("globex", {}),
               ("initech", {"settings": {"currency": "EUR"}, "timezone": "Africa/Nairobi"}))
    await run_cycle(InvoicerSettings(), utc(2013, 7, 1))
    monkeypatch.setattr(routes_admin, "PAGE_SIZE", 1)
    await sign_in(api, "viewer")
    page = (await api.client.get("/portal/admin/billing")).text

    def card(testid: str) -> str:
        found = re.search(rf'data-testid="{testid}">.*?<p class="card-value">([^<]*)</p>',
                          page, re.S)
        assert found, testid
        return found.group(1)

    assert card("card-tenants") == "3" and card("card-pending") == "3"
    assert card("card-overdue") == "0" and card("card-revenue")
    recon = page.split("<caption>Usage reconciliation</caption>")[1].split("</table>")[0]
    for tenant in ("acme", "globex", "initech"):
        assert f'href="/portal/admin/tenants/{tenant}"' in recon
    assert "2013-06-01 to 2013-06-30" in recon
    assert "2013-05-31" not in recon  # initech's period in its own zone, not in UTC
    assert "No dead letters in the last 24 hours." in page


async def test_the_dead_letters_of_the_last_day_are_listed(dead_letter_api: ApiHarness) -> None:
    api = dead_letter_api
    await publish_dead_letter(api, "validation_error", "quantity: must be >= 0 <b>",
                              key="globex")
    await sign_in(api, "super")

    async def listed() -> str | None:
        text = (await api.client.get("/portal/admin/billing")).text
        return text if "validation_error" in text else None

    page = await eventually(listed, what="the dead letter on the page")
    table = page.split("<caption>Dead letters (last 24 hours)</caption>")[1].split("</table>")[0]
    assert "quantity: must be &gt;= 0 &lt;b&gt;" in table and "globex" in table
    assert "t.billing.usage.v1" in table
