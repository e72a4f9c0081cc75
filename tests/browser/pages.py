"""What the browser tests do on the portal's pages, by role, accessible name and data-testid
(docs/portal.md): sign in, read a card or a table, find the data the demo produced."""

import re
from datetime import datetime, timedelta
from typing import Any

from playwright.sync_api import Locator, Page, expect

from services.api.usage_window import Range, usage_window
from services.common.invoice_pdf import format_money
from tests.support.browser import DemoPortal, Shots

#: The badges of the API's `unpaid` filter (pending_payment, failed, overdue).
UNPAID_BADGES = {"Unpaid", "Payment failed", "Overdue"}
#: The labels of the billing configuration form, in the order of the admin console.
CONFIG_LABELS = (
    "Flat rate amount", "Currency", "Billing frequency", "Billing email",
    "Auto-generate invoices", "Billing day of month", "Payment due days",
    "Email notifications", "Time zone", "Price plan",
)


def text(value: str) -> str:
    """`value` with runs of white space (no-break spaces included) as one space, stripped."""
    return re.sub(r"\s+", " ", value.replace("\xa0", " ")).strip()


def sign_in(page: Page, demo: DemoPortal, key: str, login_url: str | None = None) -> None:
    """Sign in on `/portal/login` (or `login_url`) with an API key; waits until the page left
    the form."""
    page.goto(login_url or f"{demo.url}/portal/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/portal/login" not in url)


def open_portal_link(page: Page, url: str, tenant_id: str) -> None:
    """Open a portal link: its page names the tenant; its button opens the session and lands
    on the tenant's Invoices page."""
    page.goto(url)
    page.get_by_role("button", name="Open the billing portal").click()
    expect(page).to_have_url(re.compile(rf"/portal/tenants/{re.escape(tenant_id)}/invoices$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Invoices")


def card_value(page: Page, testid: str) -> str:
    """The value shown on the summary card `testid`."""
    return text(page.get_by_test_id(testid).locator(".card-value").inner_text())


def money(monies: list[dict[str, Any]], currency: str) -> str:
    """The API's formatted amount in `currency` from a list of `Money`, `format_money(0)` when
    the list has none in it (the page shows zero in the tenant's currency)."""
    for item in monies:
        if item["currency"] == currency:
            return text(str(item["formatted"]))
    return text(format_money(0, currency))


def table(page: Page, caption: str) -> Locator:
    """The table whose caption (accessible name) is `caption`."""
    return page.get_by_role("table", name=caption, exact=True)


def invoice_rows(page: Page) -> dict[str, str]:
    """The Invoices table's rows: invoice number -> the text of its status badge."""
    rows = table(page, "Invoices").locator("tbody tr")
    found: dict[str, str] = {}
    for row in rows.all():
        link = row.get_by_role("link")
        if link.count() == 0:  # a "no invoices" row
            continue
        found[text(link.first.inner_text())] = text(row.locator(".badge").inner_text())
    return found


def csrf_token(page: Page) -> str:
    """The session's CSRF token, as the page's forms carry it."""
    value = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert value, "no CSRF token on the page"
    return value


def unpaid_invoice(demo: DemoPortal) -> dict[str, Any]:
    """An unpaid invoice of the demo (the tenant whose card is declined has one)."""
    body = demo.get("/v1/invoices", status="unpaid", limit="200")
    assert body["data"], "the demo left no unpaid invoice"
    first: dict[str, Any] = body["data"][0]
    return first


def config_history(demo: DemoPortal, tenant_id: str) -> list[int]:
    """The versions in the tenant's configuration history (the API's)."""
    view = demo.get(f"/v1/tenants/{tenant_id}/billing-config")
    return sorted(int(row["version"]) for row in view["history"])


def config_submissions(demo: DemoPortal, tenant_id: str) -> int:
    """How many `billing_config.submit` records the audit holds for the tenant."""
    entries = demo.get("/v1/audit", tenant_id=tenant_id, limit="200")["data"]
    return sum(1 for entry in entries if entry["action"] == "billing_config.submit")


def usage_total(demo: DemoPortal, tenant: str, preset: Range) -> str:
    """The API's estimated total for the window the Usage page shows for `preset`, the way
    docs/portal.md tells a client to reproduce it: the preset's answer, or, when the newest
    usage hour ends at or before its start, the preset computed at the end of that hour."""
    answer = demo.get(f"/v1/tenants/{tenant}/usage", range=preset)
    start = datetime.fromisoformat(answer["start"])
    newest = datetime.fromisoformat(answer["as_of"]) if answer["as_of"] else None
    if newest is not None and newest + timedelta(hours=1) <= start:
        zone = demo.get(f"/v1/tenants/{tenant}")["timezone"]
        start, end = usage_window(preset, None, None, newest + timedelta(hours=1), zone)
        answer = demo.get(f"/v1/tenants/{tenant}/usage",
                          **{"from": start.isoformat(), "to": end.isoformat()})
    return text(answer["estimated_total"]["formatted"])


def enter_card(page: Page, number: str, button: str | re.Pattern[str] = re.compile("^Pay ")
               ) -> None:
    """Fill the hosted checkout's card form with `number` and submit it with `button`
    ("Pay <amount>" in payment mode, "Save card" in setup mode)."""
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry (MM / YY)").fill("12 / 34")
    page.get_by_label("CVC").fill("123")
    page.get_by_label("Name on card").fill("Accounts Payable")
    page.get_by_role("button", name=button).click()


def visit_tenant_pages(page: Page, tenant: str, shots: Shots) -> None:
    """From the tenant's Invoices page: Usage, Billing, Invoices again and its first invoice
    (when it has one) through the main navigation and the table, a screenshot of each."""
    main = page.get_by_role("navigation", name="Main")
    shots(page, f"{tenant}-invoices")
    for name in ("Usage", "Billing"):
        main.get_by_role("link", name=name).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(name)
        shots(page, f"{tenant}-{name.lower()}")
    main.get_by_role("link", name="Invoices").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Invoices")
    links = table(page, "Invoices").locator("tbody tr").get_by_role("link")
    if links.count():
        links.first.click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Invoice ")
        shots(page, f"{tenant}-invoice")


def history_versions(page: Page, reload: bool = False) -> list[str]:
    """The versions listed in the tenant's "Configuration history" (after a reload)."""
    if reload:
        page.reload()
    cells = page.get_by_test_id("config-history").locator("tbody tr td:first-child")
    return [text(cell) for cell in cells.all_inner_texts()]


def form_values(form: Locator) -> dict[str, str | float | bool]:
    """What `form` would submit (disabled fields included): name -> value."""
    values: dict[str, str | float | bool] = form.evaluate(
        "f => Object.fromEntries([...f.elements].filter(e => e.name && "
        "(e.type !== 'checkbox' || e.checked)).map(e => [e.name, e.value]))")
    return values
