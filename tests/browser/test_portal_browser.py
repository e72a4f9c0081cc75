"""The portal in a real Chromium against the demo's data (docs/portal.md, "Browser tests").

One `billing demo --keep-running` serves the whole module (`demo_portal`); each test has a
fresh browser context and saves full-page screenshots under `.billing/test-output/<test>/`.
Tests that change data run last: the operator's edit, the payment of the unpaid invoice, a
new card.
"""

import re

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from services.api.usage_window import Range
from services.demo.self_service import TENANTS as SELF_SERVICE
from tests.browser.pages import (
    CONFIG_LABELS,
    UNPAID_BADGES,
    card_value,
    config_history,
    config_submissions,
    csrf_token,
    enter_card,
    form_values,
    history_versions,
    invoice_rows,
    money,
    open_portal_link,
    sign_in,
    table,
    text,
    unpaid_invoice,
    usage_total,
    visit_tenant_pages,
)
from tests.support.browser import ConsoleErrors, DemoPortal, Shots, focus_by_tab
from tests.support.polling import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_a_tenant_sees_its_cards_filters_unpaid_opens_an_invoice_and_downloads_its_pdf(
    demo_portal: DemoPortal, page: Page, shots: Shots,
) -> None:
    demo = demo_portal
    tenant = unpaid_invoice(demo)["tenant_id"]
    open_portal_link(page, demo.new_link(tenant), tenant)
    currency = demo.get(f"/v1/tenants/{tenant}")["currency"]
    balance = demo.get(f"/v1/tenants/{tenant}/balance")
    assert card_value(page, "card-outstanding") == money(balance["outstanding"], currency)
    assert card_value(page, "card-paid") == money(balance["total_paid"], currency)
    assert card_value(page, "card-overdue") == str(balance["overdue_count"])
    assert card_value(page, "card-total") == str(balance["total_invoices"])
    assert list(invoice_rows(page)) == [i["invoice_number"] for i in demo.invoices(tenant)][:50]
    shots(page, "invoices-all")

    page.get_by_role("link", name="Unpaid", exact=True).click()
    expect(page.get_by_role("link", name="Unpaid", exact=True)).to_have_attribute(
        "aria-current", "page")
    unpaid = invoice_rows(page)
    assert unpaid and set(unpaid.values()) <= UNPAID_BADGES, unpaid
    assert list(unpaid) == [i["invoice_number"] for i in demo.invoices(tenant, "unpaid")]
    shots(page, "invoices-unpaid")
    page.get_by_role("link", name="Paid", exact=True).click()
    expect(page.get_by_role("link", name="Paid", exact=True)).to_have_attribute(
        "aria-current", "page")
    assert set(invoice_rows(page).values()) <= {"Paid"}
    assert list(invoice_rows(page)) == [i["invoice_number"] for i in demo.invoices(tenant, "paid")]
    page.get_by_role("link", name="Unpaid", exact=True).click()
    expect(page.get_by_role("link", name="Unpaid", exact=True)).to_have_attribute(
        "aria-current", "page")

    number = next(iter(unpaid))
    table(page, "Invoices").get_by_role("link", name=number, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Invoice {number}")
    detail = demo.get(f"/v1/invoices/{number}")
    expect(page.get_by_test_id("invoice-status")).to_have_text(unpaid[number])
    expect(page.get_by_test_id("timeline").locator("li").first).to_be_visible()
    expect(table(page, "Line items").locator("tbody tr")).to_have_count(
        len(detail["line_items"]))
    assert text(page.get_by_test_id("invoice-total").inner_text()) == text(
        detail["total"]["formatted"])
    shots(page, "invoice-detail")

    with page.expect_download() as started:
        page.get_by_role("link", name="Download PDF").click()
    download = started.value
    saved = shots.folder / f"{number}.pdf"
    download.save_as(saved)
    assert saved.read_bytes().startswith(b"%PDF"), saved.read_bytes()[:200]


def test_a_tenant_session_cannot_open_another_tenants_invoice_by_url(
    demo_portal: DemoPortal, page: Page, shots: Shots,
) -> None:
    demo = demo_portal
    tenants = list(demo.keys["tenants"])
    owner = next(t for t in tenants if demo.invoices(t))
    other = next(t for t in tenants if t != owner)
    number = demo.invoices(owner)[0]["invoice_number"]
    open_portal_link(page, demo.new_link(other), other)

    missing = page.goto(f"{demo.url}/portal/tenants/{other}/invoices/INV-1999-9999")
    assert missing is not None and missing.status == 404
    missing_page = text(page.locator("main").inner_text())
    for path in (f"/portal/tenants/{owner}/invoices/{number}",
                 f"/portal/tenants/{other}/invoices/{number}",
                 f"/portal/tenants/{owner}/invoices/{number}/pdf",
                 f"/portal/tenants/{owner}/invoices", f"/portal/tenants/{owner}/usage",
                 "/portal/admin/tenants"):
        response = page.goto(demo.url + path)
        assert response is not None and response.status == 404, path
        expect(page.get_by_role("heading", level=1)).to_have_text("Not Found")
        expect(page.get_by_test_id("invoice-status")).to_have_count(0)
        expect(page.get_by_role("link", name="Download PDF")).to_have_count(0)
    shots(page, "refused")
    # the other tenant's invoice looks exactly like one that does not exist
    page.goto(f"{demo.url}/portal/tenants/{other}/invoices/{number}")
    assert text(page.locator("main").inner_text()) == missing_page.replace(
        "INV-1999-9999", number)


def test_every_page_the_demos_links_lead_to_opens_without_a_console_error(
    demo_portal: DemoPortal, context: BrowserContext, page: Page, shots: Shots,
    console_errors: ConsoleErrors,
) -> None:
    demo = demo_portal
    printed = demo.log_tail(chars=1_000_000)
    if demo.stderr.exists():  # the demo says where to sign in, one link per tenant
        assert demo.links["login_url"] in printed
        assert all(url in printed for url in demo.links["tenants"].values())
    for tenant in demo.links["tenants"]:
        open_portal_link(page, demo.demo_link(tenant), tenant)
        visit_tenant_pages(page, tenant, shots)
        context.clear_cookies()

    sign_in(page, demo, demo.keys["super"], demo.links["login_url"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Tenants")
    shots(page, "admin-tenants")
    table(page, "Tenants").get_by_role("link").first.click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.get_by_label("Billing email")).to_be_visible()
    shots(page, "admin-tenant")
    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name=re.compile("Administration")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Administration"))
    expect(page.get_by_test_id("card-tenants").locator(".card-value")).to_have_text(
        str(demo.get("/v1/dashboard")["total_tenants"]))
    shots(page, "admin-billing")
    assert console_errors.seen == []


def test_the_usage_pages_total_estimated_bill_equals_the_apis(
    demo_portal: DemoPortal, page: Page, shots: Shots,
) -> None:
    demo = demo_portal
    presets: tuple[tuple[str, Range], ...] = (
        ("Last 7 days", "last_7_days"), ("Last month", "last_month"),
        ("Last 90 days", "last_90_days"))
    signed_up = {t.tenant_id for t in SELF_SERVICE}  # their usage (if any) is today's
    for tenant in [t for t in demo.keys["tenants"] if t not in signed_up]:  # three time zones
        open_portal_link(page, demo.new_link(tenant), tenant)
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Usage")
        for label, preset in presets:
            page.get_by_role("link", name=label, exact=True).click()
            expect(page).to_have_url(re.compile(f"range={preset}"))
            expect(page.get_by_role("link", name=label, exact=True)).to_have_attribute(
                "aria-current", "page")
            expected = usage_total(demo, tenant, preset)
            shown = text(page.get_by_test_id("usage-total").inner_text())
            assert shown == expected, (tenant, preset)
            expect(page.get_by_test_id("usage-as-of")).to_contain_text(":00")
            shots(page, f"{tenant}-usage-{preset}")


def test_an_operator_edits_a_configuration_field_invalid_then_valid(
    demo_portal: DemoPortal, page: Page, shots: Shots,
) -> None:
    demo = demo_portal
    tenant = list(demo.keys["tenants"])[-1]
    name = demo.get(f"/v1/tenants/{tenant}")["name"]
    versions, submitted = config_history(demo, tenant), config_submissions(demo, tenant)
    sign_in(page, demo, demo.keys["super"])
    page.get_by_label("Search tenants").fill(tenant)
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"[?&]q=" + re.escape(tenant)))
    expect(table(page, "Tenants").locator("tbody tr")).to_have_count(1)
    table(page, "Tenants").get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)

    day = page.get_by_label("Billing day of month")
    day.fill("32")
    page.get_by_role("button", name="Save configuration").click()
    day = page.get_by_label("Billing day of month")  # the page answered (422) with the form
    expect(day).to_have_attribute("aria-invalid", "true")
    expect(day).to_have_value("32")  # what was typed is kept
    message = page.locator(f"#{day.get_attribute('aria-describedby')}")
    expect(message).to_be_visible()
    assert text(message.inner_text())
    expect(page.get_by_test_id("form-errors")).to_be_visible()
    shots(page, "invalid-billing-day")
    assert config_history(demo, tenant) == versions  # nothing was published
    assert config_submissions(demo, tenant) == submitted

    page.goto(f"{demo.url}/portal/admin/tenants/{tenant}")
    due = page.get_by_label("Payment due days")
    new_days = str(int(due.input_value()) % 60 + 1)
    due.fill(new_days)
    page.get_by_role("button", name="Save configuration").click()
    expect(page.get_by_test_id("flash")).to_be_visible()
    shots(page, "submitted")
    wait_until(lambda: len(config_history(demo, tenant)) == len(versions) + 1,
               what="the new configuration version in the API's history", seconds=60)
    assert config_submissions(demo, tenant) == submitted + 1
    newest = str(max(config_history(demo, tenant)))

    wait_until(lambda: newest in history_versions(page, reload=True),
               what=f"version {newest} in the page's history", seconds=60)
    expect(page.get_by_label("Payment due days")).to_have_value(new_days)
    shots(page, "new-version")


def test_a_viewer_cannot_submit_the_configuration_form(
    demo_portal: DemoPortal, page: Page, shots: Shots,
) -> None:
    demo = demo_portal
    tenant = next(iter(demo.keys["tenants"]))
    versions, submitted = config_history(demo, tenant), config_submissions(demo, tenant)
    sign_in(page, demo, demo.keys["viewer"])
    page.goto(f"{demo.url}/portal/admin/tenants/{tenant}")
    for label in CONFIG_LABELS:
        expect(page.get_by_label(label, exact=True)).to_be_disabled()
    for action in ("Save configuration", "Record payment", "Grant credit", "Issue invoice"):
        expect(page.get_by_role("button", name=action)).to_have_count(0)
    form = page.get_by_test_id("config-form")
    expect(form.locator("button, input[type=submit]")).to_have_count(0)
    shots(page, "viewer")

    # the form as a super would send it, with the viewer's session and CSRF token
    fields = form_values(form) | {"csrf_token": csrf_token(page), "payment_due_days": "30"}
    forged = page.request.post(f"{demo.url}/portal/admin/tenants/{tenant}/billing-config",
                               form=fields, max_redirects=0)
    assert forged.status == 403, forged.text()
    assert config_history(demo, tenant) == versions
    assert config_submissions(demo, tenant) == submitted


def test_the_sign_in_form_works_by_keyboard(
    demo_portal: DemoPortal, page: Page, shots: Shots,
) -> None:
    demo = demo_portal
    page.goto(f"{demo.url}/portal/login")
    focus_by_tab(page, "el => el.id === 'api_key'")
    page.keyboard.type("key_not_a_real_one")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("That API key is not valid")
    shots(page, "wrong-key")
    focus_by_tab(page, "el => el.id === 'api_key'")
    page.keyboard.type(demo.keys["super"])
    focus_by_tab(page, "el => el.tagName === 'BUTTON' && el.textContent.trim() === 'Sign in'",
                 presses=3)
    shots(page, "sign-in-focused")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/portal/admin/tenants$"))
    shots(page, "signed-in")


def test_a_tenant_pays_its_unpaid_invoice_through_the_hosted_checkout(
    demo_portal: DemoPortal, page: Page, shots: Shots,
) -> None:
    demo = demo_portal
    invoice = unpaid_invoice(demo)
    tenant, number = invoice["tenant_id"], invoice["invoice_number"]
    open_portal_link(page, demo.new_link(tenant), tenant)
    detail_url = f"{demo.url}/portal/tenants/{tenant}/invoices/{number}"
    page.goto(detail_url)
    focus_by_tab(page, "el => el.tagName === 'BUTTON' && el.textContent.trim() === 'Pay now'")
    shots(page, "pay-now-focused")
    focus_by_tab(page, "el => el.tagName === 'BUTTON' && "
                       "el.textContent.trim() === 'Pay with another card'", presses=3)
    page.keyboard.press("Enter")  # the keyboard reaches the hosted checkout too

    page.wait_for_url(re.compile(r"/checkout/"))
    checkout_url = page.url
    enter_card(page, "4000 0000 0000 0002")  # Stripe's generic decline
    expect(page.get_by_role("alert")).to_contain_text("Your card was declined.")
    assert page.url.split("?")[0] == checkout_url.split("?")[0]  # the session stays open
    shots(page, "declined")
    assert demo.get(f"/v1/invoices/{number}")["status"] == invoice["status"]
    enter_card(page, "4242 4242 4242 4242")

    page.wait_for_url(re.compile(re.escape(f"/invoices/{number}") + r"\?checkout=returned"))
    # "submitted" until Stripe's webhook is reconciled (the page refreshes itself), then paid
    expect(page.get_by_test_id("payment-message")).to_contain_text(
        re.compile("Payment submitted|Payment received"))
    shots(page, "returned")
    expect(page.get_by_test_id("invoice-status")).to_have_text("Paid", timeout=90_000)
    expect(page.get_by_test_id("payment-message")).to_contain_text("Payment received")
    assert demo.get(f"/v1/invoices/{number}")["status"] == "paid"
    expect(page.get_by_role("button", name="Pay now")).to_have_count(0)
    shots(page, "paid")


def test_a_tenant_replaces_its_card_through_the_hosted_setup_page(
    demo_portal: DemoPortal, page: Page, shots: Shots,
) -> None:
    demo = demo_portal
    tenant = next(t for t in demo.keys["tenants"]
                  if demo.get(f"/v1/tenants/{t}/payment-method")["on_file"])
    open_portal_link(page, demo.new_link(tenant), tenant)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    before = demo.get(f"/v1/tenants/{tenant}/payment-method")
    expect(page.get_by_test_id("payment-method")).to_contain_text(
        f"ending in {before['last4']}")
    page.get_by_role("button", name="Manage payment method").click()

    page.wait_for_url(re.compile(r"/checkout/"))
    enter_card(page, "5555 5555 5555 4444", button="Save card")
    page.wait_for_url(re.compile(r"/billing\?setup=returned"))
    expect(page.get_by_test_id("setup-message")).to_be_visible()
    shots(page, "returned")

    def shown() -> bool:  # the new card once Stripe's webhook made it the default
        page.reload()
        return "ending in 4444" in page.get_by_test_id("payment-method").inner_text()

    wait_until(shown, what="the new card on the Billing page", seconds=90)
    assert demo.get(f"/v1/tenants/{tenant}/payment-method")["last4"] == "4444"
    shots(page, "new-card")


# The subscribing tests run last in this module, on the same demo run (one demo for the whole
# browser suite: starting it takes about two minutes).
from tests.browser.subscribe_cases import (  # noqa: E402, F401
    plan_code,
    test_a_new_tenant_subscribes_through_the_hosted_checkout,
    test_update_payment_details_changes_the_card_shown,
)
