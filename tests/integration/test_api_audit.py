"""`GET /v1/audit` on the real database: API writes and the invoicer's refusals, newest first,
in cursor pages, filtered by tenant."""

import pytest
from starlette.requests import Request

from services.api.audit import record_write
from services.api.principal import Principal
from services.common.errors import Forbidden
from services.common.settings import CommonSettings
from services.invoicer.handlers import apply_signed_config
from tests.integration.test_invoicer_support import config, open_store
from tests.support.api import ApiHarness

pytestmark = pytest.mark.integration
WHO = Principal("key_00000000000000aa", "ops", "super")


def request(path: str, request_id: str) -> Request:
    return Request({"type": "http", "method": "POST", "path": path, "headers": [],
                    "query_string": b"", "billing.request_id": request_id})


async def test_writes_and_invoicer_refusals_are_listed_newest_first_in_pages(
    api: ApiHarness, common_settings: CommonSettings,
) -> None:
    for n, tenant in enumerate(["acme", "globex", "acme"]):
        await record_write(api.ctx, request(f"/v1/tenants/{tenant}/credits", f"req-{n}"), WHO,
                           "credit.grant", f"tenant:{tenant}", {"amount": str(n)})
    unsigned = config("acme")
    async with open_store(common_settings) as store:
        with pytest.raises(Forbidden):
            await apply_signed_config(store, unsigned, b"k" * 32)
    token = await api.key("super")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await api.client.get("/v1/audit", params=params, headers=api.auth(token))
        assert response.status_code == 200, response.text
        body = response.json()
        seen += body["data"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 2
    assert [e["source"] for e in seen] == ["invoicer", "api", "api", "api"]
    assert [e["request_id"] for e in seen[1:]] == ["req-2", "req-1", "req-0"]
    refusal = seen[0]
    assert refusal["tenant_id"] == "acme" and refusal["change"]["reason"] == "forbidden"
    assert refusal["id"] == unsigned.event_id
    assert seen[1]["actor"] == {"key_id": WHO.key_id, "name": "ops", "role": "super",
                                "tenant_id": None}
    acme = await api.client.get("/v1/audit", params={"tenant_id": "acme"},
                                headers=api.auth(token))
    assert [e["tenant_id"] for e in acme.json()["data"]] == ["acme"] * 3


async def test_a_cursor_the_api_did_not_make_is_a_400_problem(api: ApiHarness) -> None:
    response = await api.client.get("/v1/audit", params={"cursor": "not-a-cursor!"},
                                    headers=api.auth(await api.key("super")))
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_limit_out_of_range_is_a_422_problem_naming_the_parameter(
    api: ApiHarness,
) -> None:
    response = await api.client.get("/v1/audit", params={"limit": 500},
                                    headers=api.auth(await api.key("super")))
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["loc"] == ["query", "limit"]
