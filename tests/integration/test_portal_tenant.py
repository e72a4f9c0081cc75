"""The tenant pages on the real stack (no browser): Invoices cards and tabs, the invoice detail
(timeline, lines, totals, PDF), the pay form's CSRF and role checks, Usage against the API's
own numbers, Billing, and tenant isolation. One API and one seeded database for the module
(`reads_support.seed`: acme USD with usage in June and July 2013, globex EUR, umbrella)."""

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
import pytest_asyncio

from services.invoicer.adapters.store import InvoicerStore
from tests.integration.portal_tenant_support import (
    Portal,
    csrf_of,
    invoice_numbers,
    operator_browser,
    tenant_browser,
    text_of,
)
from tests.integration.reads_support import seed
from tests.support.api import api_harness, module_settings
from tests.support.servers import Servers

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def portal(servers: Servers) -> AsyncIterator[Portal]:
    settings = module_settings(servers)
    async with api_harness(settings) as api:
        seeded = await seed(InvoicerStore(api.ctx.client, api.ctx.db))
        tokens = {"viewer": await api.key("viewer"), "super": await api.key("super")}
        browsers = {name: await tenant_browser(api, tokens["super"], name)
                    for name in ("acme", "globex", "umbrella")}
        browsers["viewer"] = await operator_browser(api, tokens["viewer"])
        try:
            yield Portal(api, seeded, tokens, browsers)
        finally:
            for client in browsers.values():
                await client.aclose()
            await api.ctx.client.drop_database(settings.mongo_db)


async def test_invoices_page_shows_the_balance_cards_in_the_tenant_currency(
    portal: Portal,
) -> None:
    acme = portal.browsers["acme"]
    page = await acme.get("/portal/tenants/acme/invoices")
    assert page.status_code == 200
    june = await portal.api_get(f"/v1/invoices/{portal.number('acme', '2013-07-01')}")
    july = await portal.api_get(f"/v1/invoices/{portal.number('acme', '2013-08-01')}")
    assert text_of(page.text, "card-outstanding") == (
        f"Outstanding balance {july['total']['formatted']}")
    assert text_of(page.text, "card-paid") == f"Total paid {june['total']['formatted']}"
    assert text_of(page.text, "card-overdue") == "Overdue 0"
    assert text_of(page.text, "card-total") == "Total invoices 2"
    # the page's own icon (browsers ask for /favicon.ico, a 404 console error, without one)
    assert 'rel="icon" href="/portal/static/favicon.svg"' in page.text
    icon = await acme.get("/portal/static/favicon.svg")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"

    german = await portal.browsers["globex"].get(
        "/portal/tenants/globex/invoices", headers={"Accept-Language": "de-DE,de;q=0.9"})
    balance = await portal.api_get("/v1/tenants/globex/balance")
    amount = balance["outstanding"][0]["amount"]
    assert balance["outstanding"][0]["currency"] == "EUR"
    # German grouping and decimal comma (text_of folds the no-break space before the sign)
    expected = f"{amount // 100:,}".replace(",", ".") + f",{amount % 100:02d} €"
    assert text_of(german.text, "card-outstanding") == f"Outstanding balance {expected}"


async def test_tabs_filter_the_invoices_and_mark_the_active_tab(portal: Portal) -> None:
    acme = portal.browsers["acme"]
    june, july = portal.number("acme", "2013-07-01"), portal.number("acme", "2013-08-01")
    every = await acme.get("/portal/tenants/acme/invoices")
    assert invoice_numbers(every.text) == [june, july]
    assert '<a href="?tab=all" aria-current="page">All</a>' in every.text
    unpaid = await acme.get("/portal/tenants/acme/invoices", params={"tab": "unpaid"})
    assert invoice_numbers(unpaid.text) == [july]
    assert '<a href="?tab=unpaid" aria-current="page">Unpaid</a>' in unpaid.text
    assert 'class="badge badge-pending_payment">Unpaid<' in unpaid.text
    paid = await acme.get("/portal/tenants/acme/invoices", params={"tab": "paid"})
    assert invoice_numbers(paid.text) == [june]
    assert 'class="badge badge-paid">Paid<' in paid.text
    assert "Next page" not in paid.text
    wrong = await acme.get("/portal/tenants/acme/invoices", params={"tab": "late"})
    assert wrong.status_code == 422 and "text/html" in wrong.headers["content-type"]


async def test_invoice_detail_shows_timeline_lines_totals_and_pay_only_when_unpaid(
    portal: Portal,
) -> None:
    acme = portal.browsers["acme"]
    june = portal.number("acme", "2013-07-01")
    page = await acme.get(f"/portal/tenants/acme/invoices/{june}")
    assert page.status_code == 200
    assert f"<h1>Invoice {june}</h1>" in page.text
    assert text_of(page.text, "invoice-status") == "Paid"
    timeline = text_of(page.text, "timeline")
    labels = re.findall(r"<strong>([^<]+)</strong>", page.text.split('data-testid="timeline"')[1]
                        .split("</ol>")[0])
    # date order: the payment of 2 July was recorded after the cycle marked the invoice
    # overdue on 1 August, yet it shows before the due date
    assert labels == ["Issued", "Paid", "Due", "Became overdue"], labels
    assert "Jul 2, 2013" in timeline  # paid at 03:00 UTC on 2 July (acme is in UTC)
    body = await portal.api_get(f"/v1/invoices/{june}")
    assert "CPU (per unit)" in page.text and "cpu_hours" not in page.text
    assert ">12.25 vCPU-hours<" in page.text and ">$0.50<" in page.text
    assert ">$6.13<" in page.text
    assert text_of(page.text, "invoice-total") == body["total"]["formatted"]
    assert text_of(page.text, "invoice-subtotal") == body["subtotal"]["formatted"]
    assert "Jun 1, 2013 – Jun 30, 2013" in page.text  # the period's first and last day
    assert "Download PDF" in page.text and "Pay now" not in page.text
    confirmed = await acme.get(f"/portal/tenants/acme/invoices/{june}",
                               params={"checkout": "returned"})
    assert text_of(confirmed.text, "payment-message") == "Payment received. Thank you."
    assert "meta http-equiv" not in confirmed.text

    july = portal.number("acme", "2013-08-01")
    unpaid = await acme.get(f"/portal/tenants/acme/invoices/{july}")
    assert text_of(unpaid.text, "invoice-status") == "Unpaid"
    assert 'name="method" value="auto" class="primary">Pay now<' in unpaid.text
    assert 'name="method" value="checkout">Pay with another card<' in unpaid.text
    returned = await acme.get(f"/portal/tenants/acme/invoices/{july}",
                              params={"checkout": "returned"})
    assert text_of(returned.text, "payment-message") == (
        "Payment submitted. The invoice shows Paid as soon as Stripe confirms it.")
    assert '<meta http-equiv="refresh" content="3">' in returned.text
    # a crafted link cannot put words on the page: messages come from the session only
    crafted = await acme.get(f"/portal/tenants/acme/invoices/{july}",
                             params={"payment": "failed", "reason": "Call +1 555 0100"})
    assert crafted.status_code == 200 and "555 0100" not in crafted.text
    assert 'data-testid="payment-message"' not in crafted.text


async def test_the_pdf_downloads_as_an_attachment(portal: Portal) -> None:
    june = portal.number("acme", "2013-07-01")
    pdf = await portal.browsers["acme"].get(f"/portal/tenants/acme/invoices/{june}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'attachment; filename="{june}.pdf"'


async def test_paying_needs_the_csrf_token_and_a_paying_role(portal: Portal) -> None:
    july = portal.number("acme", "2013-08-01")
    path = f"/portal/tenants/acme/invoices/{july}/pay"
    acme = portal.browsers["acme"]
    refused = await acme.post(path, data={"method": "auto"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    forged = await acme.post(path, data={"method": "auto", "csrf_token": "forged"})
    assert forged.status_code == 403
    viewer = portal.browsers["viewer"]
    page = await viewer.get(f"/portal/tenants/acme/invoices/{july}")
    assert page.status_code == 200 and "Pay now" not in page.text
    denied = await viewer.post(path, data={"method": "auto", "csrf_token": csrf_of(page.text)})
    assert denied.status_code == 403
    after = await portal.api_get(f"/v1/invoices/{july}")
    assert after["status"] == "pending_payment" and after["payment_reference"] is None
    assert [e["event"] for e in after["timeline"]] == ["issued"]


async def test_a_tenant_session_gets_404_for_another_tenants_pages_and_invoices(
    portal: Portal,
) -> None:
    umbrella = portal.browsers["umbrella"]
    june = portal.number("acme", "2013-07-01")
    missing = await umbrella.get("/portal/tenants/umbrella/invoices/INV-2099-0001")
    assert missing.status_code == 404
    for path in (f"/portal/tenants/acme/invoices/{june}",
                 f"/portal/tenants/acme/invoices/{june}/pdf",
                 f"/portal/tenants/umbrella/invoices/{june}",
                 f"/portal/tenants/umbrella/invoices/{june}/pdf",
                 "/portal/tenants/acme/invoices", "/portal/tenants/acme/usage",
                 "/portal/tenants/acme/billing"):
        response = await umbrella.get(path)
        assert response.status_code == 404, path
        assert "text/html" in response.headers["content-type"]
        assert "$" not in response.text  # nothing of acme's shows
    pay = await umbrella.post(f"/portal/tenants/acme/invoices/{june}/pay",
                              data={"csrf_token": csrf_of(missing.text)})
    assert pay.status_code == 404
    # an operator sees every tenant, but an invoice only under its own tenant's path
    viewer = portal.browsers["viewer"]
    assert (await viewer.get(f"/portal/tenants/acme/invoices/{june}")).status_code == 200
    assert (await viewer.get(f"/portal/tenants/globex/invoices/{june}")).status_code == 404


async def test_the_usage_page_total_equals_the_api_for_the_anchored_window(
    portal: Portal,
) -> None:
    page = await portal.browsers["acme"].get("/portal/tenants/acme/usage",
                                             params={"range": "last_7_days"})
    assert page.status_code == 200
    # acme's usage ends in July 2013: the window is anchored at its newest hour (docs/portal.md)
    named = await portal.api_get("/v1/tenants/acme/usage", range="last_7_days")
    newest = datetime.fromisoformat(named["as_of"])
    end = newest + timedelta(hours=1)
    api = await portal.api_get("/v1/tenants/acme/usage", **{
        "from": (end - timedelta(days=7)).isoformat(), "to": end.isoformat()})
    assert api["estimated_total"]["amount"] > 0
    assert text_of(page.text, "usage-total") == api["estimated_total"]["formatted"]
    assert text_of(page.text, "usage-anchored") == "showing the 7 days up to the newest usage"
    assert text_of(page.text, "usage-as-of").startswith("Usage as of 23:00 on Jul 31, 2013")
    cpu = next(m for m in api["meters"] if m["meter"] == "cpu_hours")
    assert text_of(page.text, "card-cpu") == (
        f"CPU hours {cpu['quantity']} vCPU-hours Estimated cost: "
        f"{cpu['estimated_cost']['formatted']}")
    assert text_of(page.text, "card-bandwidth").startswith("Bandwidth 0 GB")
    assert '<a href="?range=last_7_days" aria-current="page">Last 7 days</a>' in page.text
    for caption in ("Usage by meter", "Invoices by status", "Usage by service"):
        assert f"<caption>{caption}</caption>" in page.text
    assert page.text.count('role="img"') == 2 and "<title" in page.text

    month = await portal.browsers["acme"].get("/portal/tenants/acme/usage",
                                              params={"range": "last_month"})
    named = await portal.api_get("/v1/tenants/acme/usage", range="last_month")
    assert "Jul 1, 2013 – Jul 31, 2013" in month.text  # the month before the newest usage
    july = await portal.api_get("/v1/tenants/acme/usage", **{
        "from": "2013-07-01T00:00:00Z", "to": "2013-08-01T00:00:00Z"})
    assert text_of(month.text, "usage-total") == july["estimated_total"]["formatted"]
    assert named["estimated_total"]["amount"] == 0  # the API's own last month is empty
    none = await portal.browsers["umbrella"].get("/portal/tenants/umbrella/usage")
    assert text_of(none.text, "usage-as-of") == "No usage recorded yet."
    assert "usage-anchored" not in none.text


async def test_the_billing_page_shows_the_configured_email_and_notifications(
    portal: Portal,
) -> None:
    page = await portal.browsers["acme"].get("/portal/tenants/acme/billing")
    assert page.status_code == 200
    assert text_of(page.text, "billing-email") == "billing@acme.example"
    assert text_of(page.text, "email-notifications") == "On"
    assert text_of(page.text, "payment-method")
    assert "Manage payment method" in page.text
    viewer = await portal.browsers["viewer"].get("/portal/tenants/acme/billing")
    assert viewer.status_code == 200 and "Manage payment method" not in viewer.text
    refused = await portal.browsers["acme"].post("/portal/tenants/acme/billing/payment-method")
    assert refused.status_code == 403


async def test_more_than_fifty_invoices_page_by_cursor(portal: Portal) -> None:
    """Runs last: it adds invoices to umbrella (copies of its own, in earlier periods)."""
    invoices = portal.api.ctx.db["invoicer_invoices"]
    original = await invoices.find_one({"tenant_id": "umbrella"})
    assert original is not None
    copies = []
    for n in range(1, 56):
        copy = {**original, "_id": f"copy-{n}", "invoice_number": f"INV-2098-{n:04d}",
                "period_start": original["period_start"] - timedelta(days=31 * n)}
        copies.append(copy)
    await invoices.insert_many(copies)
    total = await invoices.count_documents({"tenant_id": "umbrella"})
    umbrella = portal.browsers["umbrella"]
    first = await umbrella.get("/portal/tenants/umbrella/invoices")
    numbers = invoice_numbers(first.text)
    assert len(numbers) == 50
    link = re.search(r'<a class="button" href="([^"]+)">Next page</a>', first.text)
    assert link, "no Next page link"
    second = await umbrella.get("/portal/tenants/umbrella/invoices" + link.group(1)
                                .replace("&amp;", "&"))
    rest = invoice_numbers(second.text)
    assert len(rest) == total - 50 and not set(rest) & set(numbers)
    assert "Next page" not in second.text
    assert text_of(second.text, "card-total") == f"Total invoices {total}"
