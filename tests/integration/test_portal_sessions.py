"""Portal sign-in against the real database: single-use portal links, API-key sign-in with
its login token, signed HttpOnly SameSite=Lax session cookies, CSRF on every form, revoked keys
and tenant isolation (docs/portal.md, "Signing in")."""

import re
from typing import Any

import httpx
import pytest

from services.api.keys import MongoKeyStore
from services.api.portal.sessions import COOKIE, LINKS
from tests.integration.portal_tenant_support import open_link
from tests.integration.test_invoicer_support import config
from tests.support.api import ApiHarness

pytestmark = pytest.mark.integration


async def _tenant(api: ApiHarness, tenant_id: str) -> None:
    from services.invoicer.handlers import apply_config
    from services.invoicer.settings import InvoicerSettings
    from tests.integration.test_invoicer_support import open_store

    async with open_store(InvoicerSettings()) as store:
        await apply_config(store, config(tenant_id))


async def _link(api: ApiHarness, tenant_id: str, token: str) -> dict[str, Any]:
    response = await api.client.post(f"/v1/tenants/{tenant_id}/portal-sessions",
                                     headers=api.auth(token))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _path(url: str) -> str:
    return str(httpx.URL(url).raw_path.decode())


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def test_a_portal_link_opens_one_tenant_session_once(api: ApiHarness) -> None:
    await _tenant(api, "acme")
    await _tenant(api, "globex")
    viewer = await api.key("viewer")
    link = await _link(api, "acme", viewer)
    assert link["url"].startswith("http://api.test/portal/link/")
    stored = await api.ctx.db[LINKS].find_one({})
    assert stored is not None and link["url"].rsplit("/", 1)[1] not in str(stored)  # hash only

    # the link's page names the tenant and uses nothing up (mail scanners follow links)
    shown = await api.client.get(_path(link["url"]))
    assert shown.status_code == 200 and "acme" in shown.text
    assert COOKIE + "=" not in shown.headers.get("set-cookie", "")
    assert (await api.client.get("/portal/tenants/acme/invoices")).status_code == 303
    # its button needs the page's token (no sign-in planted by another site)
    planted = await api.client.post(_path(link["url"]), data={"login_token": "x"})
    assert planted.status_code == 403

    opened = await open_link(api.client, link["url"])
    assert opened.status_code == 303
    assert opened.headers["location"] == "/portal/tenants/acme/invoices"
    cookie = opened.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/portal" in cookie

    page = await api.client.get("/portal/tenants/acme/invoices")
    assert page.status_code == 200 and "Invoices" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    # another tenant's page: the same 404 as a tenant that does not exist
    other = await api.client.get("/portal/tenants/globex/invoices")
    missing = await api.client.get("/portal/tenants/nobody/invoices")
    assert other.status_code == missing.status_code == 404
    assert "text/html" in other.headers["content-type"]
    # operators' pages are not there for a tenant
    assert (await api.client.get("/portal/admin/tenants")).status_code == 404

    api.client.cookies.clear()
    again = await open_link(api.client, link["url"])
    assert again.status_code == 404 and "cannot be used" in again.text


async def test_tenant_keys_cannot_make_links_and_unknown_tenants_get_404(
    api: ApiHarness,
) -> None:
    await _tenant(api, "acme")
    tenant_key = await api.key("tenant", tenant_id="acme")
    denied = await api.client.post("/v1/tenants/acme/portal-sessions",
                                   headers=api.auth(tenant_key))
    assert denied.status_code == 403
    unknown = await api.client.post("/v1/tenants/nobody/portal-sessions",
                                    headers=api.auth(await api.key("super")))
    assert unknown.status_code == 404


async def test_operator_sign_in_needs_the_login_token_and_a_valid_key(api: ApiHarness) -> None:
    await _tenant(api, "acme")
    key = await api.key("viewer", name="ops viewer")
    redirect = await api.client.get("/portal/admin/tenants")
    assert redirect.status_code == 303
    assert redirect.headers["location"] == "/portal/login?next=/portal/admin/tenants"

    form = await api.client.get("/portal/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token
    forged = await api.client.post("/portal/login", data={
        "api_key": key, "login_token": "forged", "next": ""})
    assert forged.status_code == 403
    assert f"{COOKIE}=" not in forged.headers.get("set-cookie", "")
    token = re.search(r'name="login_token" value="([^"]+)"', forged.text)  # a fresh form
    assert token
    wrong = await api.client.post("/portal/login", data={
        "api_key": "key_0123456789abcdef_" + "0" * 64, "login_token": token.group(1)})
    assert wrong.status_code == 401
    token = re.search(r'name="login_token" value="([^"]+)"', wrong.text)
    assert token
    signed = await api.client.post("/portal/login", data={
        "api_key": key, "login_token": token.group(1), "next": "https://evil.example/"})
    assert signed.status_code == 303 and signed.headers["location"] == "/portal/admin/tenants"
    assert (await api.client.get("/portal/admin/tenants")).status_code == 200

    # a revoked key ends its sessions
    key_id = key.split("_")[0] + "_" + key.split("_")[1]
    from datetime import UTC, datetime

    assert await MongoKeyStore(api.ctx.db).revoke(key_id, datetime.now(UTC))
    assert (await api.client.get("/portal/admin/tenants")).status_code == 303


async def test_forms_need_the_session_csrf_token_and_cookies_are_signed(
    api: ApiHarness,
) -> None:
    await _tenant(api, "acme")
    link = await _link(api, "acme", await api.key("super"))
    assert (await open_link(api.client, link["url"])).status_code == 303
    page = await api.client.get("/portal/tenants/acme/invoices")
    csrf = _csrf(page.text)
    refused = await api.client.post("/portal/logout", data={"csrf_token": "x" + csrf})
    assert refused.status_code == 403
    assert (await api.client.get("/portal/tenants/acme/invoices")).status_code == 200

    # a tampered cookie is no session
    value = api.client.cookies.get(COOKIE)
    assert value is not None
    api.client.cookies.clear()
    api.client.cookies.set(COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"),
                           domain="api.test", path="/portal")
    assert (await api.client.get("/portal/tenants/acme/invoices")).status_code == 303
    api.client.cookies.clear()
    api.client.cookies.set(COOKIE, value, domain="api.test", path="/portal")

    out = await api.client.post("/portal/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    api.client.cookies.set(COOKIE, value, domain="api.test", path="/portal")
    assert (await api.client.get("/portal/tenants/acme/invoices")).status_code == 303


async def test_a_flash_message_shows_once_on_the_next_page(api: ApiHarness) -> None:
    from services.api.portal.sessions import SESSIONS, set_flash, unsign

    await _tenant(api, "acme")
    link = await _link(api, "acme", await api.key("super"))
    assert (await open_link(api.client, link["url"])).status_code == 303
    cookie = api.client.cookies.get(COOKIE)
    assert cookie is not None
    session_id = unsign(api.ctx.settings, cookie)
    assert session_id is not None and await api.ctx.db[SESSIONS].count_documents({}) == 1
    await set_flash(api.ctx.db, session_id, "error", "<b>declined</b>")
    first = await api.client.get("/portal/tenants/acme/invoices")
    assert 'data-testid="flash"' in first.text and "&lt;b&gt;declined&lt;/b&gt;" in first.text
    second = await api.client.get("/portal/tenants/acme/invoices")
    assert second.status_code == 200 and 'data-testid="flash"' not in second.text


async def test_a_link_made_by_a_viewer_opens_a_read_only_session(api: ApiHarness) -> None:
    from tests.integration.test_api_writes import audited

    await _tenant(api, "acme")
    viewer = await api.key("viewer", name="support desk")
    assert (await open_link(api.client, (await _link(api, "acme", viewer))["url"])).status_code \
        == 303
    billing = await api.client.get("/portal/tenants/acme/billing")
    assert billing.status_code == 200 and "Manage payment method" not in billing.text
    csrf = _csrf(billing.text)
    refused = await api.client.post("/portal/tenants/acme/billing/payment-method",
                                    data={"csrf_token": csrf})
    assert refused.status_code == 403
    paying = await api.client.post("/portal/tenants/acme/invoices/INV-X/pay",
                                   data={"csrf_token": csrf, "method": "auto"})
    assert paying.status_code == 403
    made = await audited(api, "portal_session.create")
    assert [a["actor"]["name"] for a in made] == ["support desk"]
