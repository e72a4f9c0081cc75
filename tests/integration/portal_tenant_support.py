"""Helpers the portal's tenant page tests share (no tests here): signed-in clients on the
in-process API (a portal link per tenant, an operator's key) and readers of the pages' HTML."""

import re
from dataclasses import dataclass
from typing import Any

import httpx

from tests.integration.reads_support import Seeded
from tests.support.api import BASE_URL, ApiHarness


@dataclass
class Portal:
    """The running API, the seed, API keys and one signed-in browser per name."""

    api: ApiHarness
    seeded: Seeded
    tokens: dict[str, str]
    browsers: dict[str, httpx.AsyncClient]

    def number(self, tenant: str, issued: str) -> str:
        return self.seeded.numbers[(tenant, issued)]

    async def api_get(self, path: str, **params: Any) -> Any:
        response = await self.api.client.get(path, params=params,
                                              headers=self.api.auth(self.tokens["viewer"]))
        assert response.status_code == 200, response.text
        return response.json()


async def tenant_browser(api: ApiHarness, super_token: str, tenant_id: str) -> httpx.AsyncClient:
    """A client signed in through a portal link of `tenant_id`."""
    link = await api.client.post(f"/v1/tenants/{tenant_id}/portal-sessions",
                                 headers=api.auth(super_token))
    assert link.status_code == 201, link.text
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url=BASE_URL)
    opened = await open_link(client, link.json()["url"])
    assert opened.status_code == 303
    return client


async def open_link(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """Follow a portal link as a browser does: its page, then its button's POST (returned:
    303 to the tenant's invoices, or the refusal)."""
    path = httpx.URL(url).raw_path.decode()
    page = await client.get(path)
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    if page.status_code != 200 or token is None:
        return page
    return await client.post(path, data={"login_token": token.group(1)})


async def operator_browser(api: ApiHarness, token: str) -> httpx.AsyncClient:
    """A client signed in with an operator's API key."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url=BASE_URL)
    form = await client.get("/portal/login")
    login = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert login
    signed = await client.post("/portal/login", data={"api_key": token,
                                                      "login_token": login.group(1)})
    assert signed.status_code == 303
    return client


def text_of(page: str, name: str) -> str:
    """The text inside the element with `data-testid="name"`, tags removed, spaces folded."""
    found = re.search(rf'<(\w+)[^>]*data-testid="{name}"[^>]*>(.*?)</\1>', page, re.S)
    assert found, f"no {name} in the page"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(2)).split())


def invoice_numbers(page: str) -> list[str]:
    return re.findall(r'<tr class="row-link" data-href="[^"]+/invoices/([^"]+)"', page)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)
