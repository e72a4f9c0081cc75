"""The admin console against the real broker and database: the tenant list and its search,
the Billing tab's configuration form (pre-filled, validated field by field with nothing
published, applied by the invoicer into a new version), read-only for a viewer, CSRF, and
no admin page for a tenant session (docs/portal.md, "Admin console")."""

import re
from typing import Any

import pytest

from services.api.audit import COLLECTION as API_AUDIT
from services.api.portal import routes_admin
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.handlers import apply_config
from services.invoicer.settings import InvoicerSettings
from tests.integration.portal_tenant_support import open_link
from tests.integration.test_invoicer_support import config, open_store
from tests.support.api import ApiHarness
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


async def seed(*tenants: tuple[str, dict[str, Any]]) -> None:
    """Configurations applied with the invoicer's own code (`config` overrides per tenant)."""
    async with open_store(InvoicerSettings()) as store:
        for tenant_id, overrides in tenants:
            await apply_config(store, config(tenant_id, **overrides))


async def sign_in(api: ApiHarness, role: str) -> None:
    """Sign the client in with a fresh key of `role` through the sign-in page."""
    key = await api.key(role, name=f"ops {role}")
    form = await api.client.get("/portal/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token, form.text
    signed = await api.client.post("/portal/login", data={
        "api_key": key, "login_token": token.group(1), "next": ""})
    assert signed.status_code == 303, signed.text


def csrf(page: str) -> str:
    """The page's CSRF token."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def form_data(page: str, action: str, **data: str) -> dict[str, str]:
    """What the page's form posting to `.../{action}` sends: its CSRF and one-time tokens
    plus `data`."""
    form = re.search(rf'<form method="post" action="[^"]*/{action}".*?</form>', page, re.S)
    assert form, action
    token = re.search(r'name="form_token" value="([^"]+)"', form.group(0))
    assert token, form.group(0)
    return {"csrf_token": csrf(page), "form_token": token.group(1), **data}


def field(page: str, name: str) -> str:
    """The opening tag of the input, select or textarea named `name`."""
    found = re.search(rf'<(?:input|select|textarea)[^>]*\bname="{name}"[^>]*>', page)
    assert found, name
    return found.group(0)


def form_values(page: str, **changes: str) -> dict[str, str]:
    """The configuration form as the page pre-filled it, with `changes`."""
    values: dict[str, str] = form_data(page, "billing-config")
    for name in ("flat_rate_amount", "currency", "billing_email", "billing_day_of_month",
                 "payment_due_days", "timezone"):
        found = re.search(r'value="([^"]*)"', field(page, name))
        assert found, name
        values[name] = found.group(1)
    values["billing_frequency"] = re.findall(r'<option value="(\w+)" selected>', page)[0]
    plan = re.search(r'<textarea[^>]*name="price_plan"[^>]*>(.*?)</textarea>', page, re.S)
    assert plan
    values["price_plan"] = plan.group(1).replace("&#34;", '"').replace("&quot;", '"')
    for box in ("auto_generate_invoices", "email_notifications"):
        if "checked" in field(page, box):
            values[box] = "on"
    values.update(changes)
    return values


async def test_the_tenant_list_searches_and_pages(
    api: ApiHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await seed(("acme", {}), ("globex", {"settings": {"currency": "EUR",
                                                      "billing_frequency": "quarterly"}}))
    await sign_in(api, "viewer")
    page = await api.client.get("/portal/admin/tenants")
    assert page.status_code == 200
    assert "<h1>Tenants</h1>" in page.text and "<caption>Tenants</caption>" in page.text
    assert '<label for="q">Search tenants</label>' in page.text
    assert 'href="/portal/admin/tenants/acme"' in page.text
    assert "quarterly" in page.text and "€0.00" in page.text and "$0.00" in page.text

    found = await api.client.get("/portal/admin/tenants", params={"q": "glob"})
    assert 'href="/portal/admin/tenants/globex"' in found.text
    assert "/portal/admin/tenants/acme" not in found.text
    none = await api.client.get("/portal/admin/tenants", params={"q": "<zzz>"})
    assert "No tenant matches “&lt;zzz&gt;”" in none.text

    monkeypatch.setattr(routes_admin, "PAGE_SIZE", 1)
    first = await api.client.get("/portal/admin/tenants")
    more = re.search(r'href="(/portal/admin/tenants\?cursor=[^"]+)">Next page', first.text)
    assert more and "tenants/globex" not in first.text
    second = await api.client.get(more.group(1).replace("&amp;", "&"))
    assert "tenants/globex" in second.text and "tenants/acme" not in second.text
    assert "Next page" not in second.text


async def test_the_billing_tab_shows_the_configuration_in_force(api: ApiHarness) -> None:
    await seed(("acme", {"timezone": "Africa/Nairobi"}))
    await sign_in(api, "super")
    page = await api.client.get("/portal/admin/tenants/acme")
    assert page.status_code == 200
    assert 'aria-current="page">Billing</a>' in page.text
    assert 'value="10.00"' in field(page.text, "flat_rate_amount")
    assert 'value="USD"' in field(page.text, "currency")
    assert 'value="Africa/Nairobi"' in field(page.text, "timezone")
    assert 'value="billing@acme.example"' in field(page.text, "billing_email")
    assert 'value="14"' in field(page.text, "payment_due_days")
    assert "checked" in field(page.text, "auto_generate_invoices")
    assert '<option value="monthly" selected>' in page.text
    assert "&#34;cpu_hours&#34;" in page.text  # the plan as JSON, escaped
    for label in ("Flat rate amount", "Currency", "Billing frequency", "Billing email",
                  "Auto-generate invoices", "Billing day of month", "Payment due days",
                  "Email notifications", "Time zone", "Price plan"):
        assert re.search(rf'<label for="\w+">{label}</label>', page.text), label
    assert "<caption>Configuration history</caption>" in page.text
    assert "<caption>Invoice history</caption>" in page.text
    assert "Save configuration" in page.text and "Record payment" in page.text
    assert "Issue invoice" not in page.text  # acme generates its invoices
    assert (await api.client.get("/portal/admin/tenants/nobody")).status_code == 404


async def test_an_invalid_form_shows_field_messages_and_a_valid_one_a_new_version(
    api: ApiHarness, invoicer: InvoicerStore,
) -> None:
    await seed(("acme", {}))
    await sign_in(api, "super")
    page = (await api.client.get("/portal/admin/tenants/acme")).text
    bad = form_values(page, flat_rate_amount="12.345", billing_day_of_month="32",
                      timezone="Mars/Olympus", price_plan="{not json")
    refused = await api.client.post("/portal/admin/tenants/acme/billing-config", data=bad)
    assert refused.status_code == 422
    for name in ("flat_rate_amount", "billing_day_of_month", "timezone", "price_plan"):
        tag = field(refused.text, name)
        assert 'aria-invalid="true"' in tag and f'aria-describedby="{name}-error"' in tag
        assert f'id="{name}-error"' in refused.text
    assert "USD amounts have fewer decimal places" in refused.text
    assert 'value="12.345"' in field(refused.text, "flat_rate_amount")  # what was typed
    assert 'aria-invalid' not in field(refused.text, "currency")
    plan = form_values(page, price_plan='{"charges": [{"meter": "cpu_hours", '
                       '"model": "per_unit"}]}')
    refused_plan = await api.client.post("/portal/admin/tenants/acme/billing-config",
                                         data=plan)
    assert refused_plan.status_code == 422 and 'id="price_plan-error"' in refused_plan.text
    assert await api.ctx.db[API_AUDIT].count_documents({}) == 0

    good = form_values(page, flat_rate_amount="29.00", payment_due_days="30")
    done = await api.client.post("/portal/admin/tenants/acme/billing-config", data=good)
    assert done.status_code == 303
    shown = await api.client.get(done.headers["location"])
    assert 'role="status" data-testid="flash">Configuration submitted' in shown.text

    async def version_2() -> str | None:
        text = (await api.client.get("/portal/admin/tenants/acme")).text
        history = text.split('data-testid="config-history"')[1].split("</table>")[0]
        return text if '<td class="num">2</td>' in history else None

    text = await eventually(version_2, what="version 2 in the configuration history")
    assert 'value="29.00"' in field(text, "flat_rate_amount")
    tenant = await invoicer.tenant("acme")
    assert tenant is not None and tenant["version"] == 2  # the invalid ones never arrived
    assert tenant["config"]["settings"]["flat_rate_amount"] == 2900
    [record] = await api.ctx.db[API_AUDIT].find({}).to_list()
    assert record["action"] == "billing_config.submit"
    assert record["path"] == "/portal/admin/tenants/acme/billing-config"


async def test_a_viewer_sees_the_form_read_only_and_cannot_post_it(api: ApiHarness) -> None:
    await seed(("acme", {}))
    await sign_in(api, "viewer")
    page = (await api.client.get("/portal/admin/tenants/acme")).text
    for name in ("flat_rate_amount", "currency", "billing_frequency", "price_plan",
                 "auto_generate_invoices"):
        assert " disabled" in field(page, name), name
    assert "Save configuration" not in page and "Record payment" not in page
    posted = await api.client.post("/portal/admin/tenants/acme/billing-config",
                                   data=form_values(page, flat_rate_amount="1.00"))
    assert posted.status_code == 403 and "text/html" in posted.headers["content-type"]
    token = csrf(page)
    for path, data in (("credits", {"credit_amount": "5.00", "credit_reason": "x"}),
                       ("payments", {"payment_invoice": "INV-2013-0001",
                                     "payment_method": "ach", "payment_reference": "R"}),
                       ("invoices", {"issue_period_end": "2013-07-01"})):
        refused = await api.client.post(f"/portal/admin/tenants/acme/{path}",
                                        data={"csrf_token": token, **data})
        assert refused.status_code == 403, path
    assert await api.ctx.db[API_AUDIT].count_documents({}) == 0


async def test_a_form_without_the_csrf_token_is_refused(api: ApiHarness) -> None:
    await seed(("acme", {}))
    await sign_in(api, "super")
    page = (await api.client.get("/portal/admin/tenants/acme")).text
    values = form_values(page)
    del values["csrf_token"]
    for path in ("billing-config", "credits", "payments", "invoices"):
        posted = await api.client.post(f"/portal/admin/tenants/acme/{path}", data=values)
        assert posted.status_code == 403, path
    assert await api.ctx.db[API_AUDIT].count_documents({}) == 0


async def test_a_tenant_session_finds_no_admin_page(api: ApiHarness) -> None:
    await seed(("acme", {}))
    link = await api.client.post("/v1/tenants/acme/portal-sessions",
                                 headers=api.auth(await api.key("super")))
    opened = await open_link(api.client, link.json()["url"])
    assert opened.status_code == 303
    page = await api.client.get("/portal/tenants/acme/invoices")
    token = csrf(page.text)
    for path in ("/portal/admin/tenants", "/portal/admin/tenants/acme", "/portal/admin/billing"):
        assert (await api.client.get(path)).status_code == 404, path
    posted = await api.client.post("/portal/admin/tenants/acme/credits", data={
        "csrf_token": token, "credit_amount": "5.00", "credit_reason": "x"})
    assert posted.status_code == 404
    assert await api.ctx.db[API_AUDIT].count_documents({"action": "credit.grant"}) == 0
