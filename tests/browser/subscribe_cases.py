"""Subscribing in a real Chromium against the demo (docs/portal.md, "Plans and
subscription"): billing details, the Plan page's cards, Select plan, the hosted Checkout
(cancelled once, then completed with Stripe's test card), the subscription active once
Stripe's webhook has been reconciled, and Update payment details through the hosted billing
portal.

The demo's tenants already have cards and configurations, so the tests subscribe a new tenant
(`newco-<hex>`) to a new plan made with `POST /v1/plans`, acting as the demo's `super`
operator (who may do whatever the tenant may). Tests run in file order; the second uses the
subscription of the first. Screenshots: `.billing/test-output/<test>/`.

Collected through `test_portal_browser.py`, after its own tests, so that the whole browser
suite runs on one demo.
"""

import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import enter_card, sign_in, text
from tests.support.browser import DemoPortal, Shots
from tests.support.polling import wait_until

TAG = uuid.uuid4().hex[:8]
TENANT = f"newco-{TAG}"
PLAN = f"browser-{TAG}"


@pytest.fixture(scope="module")
def plan_code(demo_portal: DemoPortal) -> str:
    """A USD monthly plan (29.00, 1,000 computations hard) in the demo's catalog."""
    created = demo_portal.api("POST", "/v1/plans", json={
        "code": PLAN, "name": f"Browser {TAG}", "description": "For the browser test.",
        "currency": "USD", "billing_frequency": "monthly", "flat_amount": 2900,
        "limits": [{"meter": "computations", "limit": "1000", "hard": True}]})
    assert created.status_code == 202, created.text
    wait_until(lambda: demo_portal.api("GET", f"/v1/plans/{PLAN}").status_code == 200,
               what=f"plan {PLAN} in the catalog", seconds=60)
    return PLAN


def subscription(demo: DemoPortal) -> Any:
    found = demo.api("GET", f"/v1/tenants/{TENANT}/subscription")
    return found.json() if found.status_code == 200 else None


def test_a_new_tenant_subscribes_through_the_hosted_checkout(
    demo_portal: DemoPortal, plan_code: str, page: Page, shots: Shots
) -> None:
    demo = demo_portal
    sign_in(page, demo, demo.keys["super"])
    page.goto(f"{demo.url}/portal/tenants/{TENANT}/plan")
    expect(page.get_by_role("heading", level=1)).to_have_text("Plan")
    card = page.get_by_test_id(f"plan-card-{plan_code}")
    expect(card).to_contain_text("$29.00 per month")
    expect(card).to_contain_text("up to 1,000")
    expect(card.get_by_role("button", name="Select plan")).to_have_count(0)
    shots(page, "details-first")

    page.get_by_label("Name", exact=True).fill("Newco GmbH")
    page.get_by_label("Billing email").fill(f"billing@{TENANT}.example")
    page.get_by_label("Country", exact=False).fill("Germany")
    page.get_by_role("button", name="Save billing details").click()
    expect(page.get_by_label("Country", exact=False)).to_have_attribute("aria-invalid", "true")
    shots(page, "invalid-country")
    page.get_by_label("Country", exact=False).fill("DE")
    page.get_by_label("Address line 1").fill("Hauptstr. 1")
    page.get_by_label("City").fill("Berlin")
    page.get_by_label("Postal code").fill("10115")
    page.get_by_role("button", name="Save billing details").click()
    expect(page.get_by_test_id("flash")).to_have_text("Billing details saved.")

    card.get_by_role("button", name="Select plan").click()  # the Checkout's Cancel link
    page.wait_for_url(re.compile(r"/checkout/"))
    shots(page, "checkout")
    page.get_by_role("link", name="Cancel").click()
    page.wait_for_url(re.compile(r"/plan\?checkout=cancelled$"))
    expect(page.get_by_test_id("checkout-message")).to_contain_text("no subscription")
    found = subscription(demo)
    assert found is None or found["status"] != "active", found

    card.get_by_role("button", name="Select plan").click()  # now completed
    page.wait_for_url(re.compile(r"/checkout/"))
    enter_card(page, "4242 4242 4242 4242", button="Save card")
    page.wait_for_url(re.compile(r"/plan\?checkout=returned$"))
    shots(page, "returned")
    # the page reloads itself until Stripe's webhook has started the subscription
    expect(page.get_by_test_id("subscription-status")).to_have_text("Active", timeout=90_000)
    expect(page.get_by_test_id("subscription-plan")).to_have_text(f"Browser {TAG}")
    expect(card.get_by_test_id("current-plan")).to_have_text("Current plan")
    assert subscription(demo)["status"] == "active"
    card_on_file = demo.get(f"/v1/tenants/{TENANT}/payment-method")
    assert card_on_file["last4"] == "4242"
    shots(page, "active")


def test_update_payment_details_changes_the_card_shown(
    demo_portal: DemoPortal, plan_code: str, page: Page, shots: Shots
) -> None:
    demo = demo_portal
    assert (subscription(demo) or {}).get("status") == "active", "the first test subscribes"
    wait_until(lambda: demo.api("GET", f"/v1/tenants/{TENANT}").status_code == 200,
               what="the new tenant's billing configuration", seconds=60)
    sign_in(page, demo, demo.keys["super"])
    page.goto(f"{demo.url}/portal/tenants/{TENANT}/billing")
    expect(page.get_by_test_id("payment-method")).to_contain_text("ending in 4242")
    page.get_by_role("button", name="Update payment details").click()
    expect(page.get_by_label("Card number")).to_be_visible()
    shots(page, "billing-portal")
    enter_card(page, "5555 5555 5555 4444", button="Add card")
    page.wait_for_url(re.compile(rf"/portal/tenants/{TENANT}/billing\?setup=returned$"))

    def shown() -> bool:  # the new card once Stripe's webhooks made it the default
        page.reload()
        return "ending in 4444" in text(page.get_by_test_id("payment-method").inner_text())

    wait_until(shown, what="the new card on the Billing page", seconds=90)
    assert demo.get(f"/v1/tenants/{TENANT}/payment-method")["last4"] == "4444"
    shots(page, "new-card")
