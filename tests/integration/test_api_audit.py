"""`GET /v1/audit` on the real database: API writes and the invoicer's refusals, newest first,
in cursor pages, filtered by tenant."""

from datetime import UTC, datetime

import pytest
from starlette.requests import Request

from contracts import Actor, CouponCreated, CreditGranted
from services.api import audit
from services.api.audit import record_write
from services.api.principal import Principal
from services.common.errors import Forbidden
from services.common.settings import CommonSettings
from services.invoicer.handlers import apply_signed_config
from services.invoicer.operator_handlers import apply_signed_operator
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


async def test_refused_credit_and_coupon_commands_are_named_by_their_own_action(
    api: ApiHarness, common_settings: CommonSettings,
) -> None:
    ops = Actor(user_id="key:forger", role="super")
    credit = CreditGranted(tenant_id="acme", credit_id="cr-1", amount=500, currency="EUR",
                           reason="goodwill", actor=ops)
    coupon = CouponCreated(code="Spring2013xY", amount_off=100, currency="EUR",
                           duration="once", actor=ops)
    async with open_store(common_settings) as store:
        for command in (credit, coupon):
            with pytest.raises(Forbidden):
                await apply_signed_operator(store, command, b"k" * 32)
    response = await api.client.get("/v1/audit", headers=api.auth(await api.key("super")))
    entries = {e["id"]: e for e in response.json()["data"]}
    assert entries[credit.event_id]["action"] == "credit.refused"
    assert entries[credit.event_id]["target"] == "tenant:acme"
    assert entries[coupon.event_id]["action"] == "coupon.refused"
    assert entries[coupon.event_id]["target"] == "coupon:Spring2013xY"
    assert entries[coupon.event_id]["change"]["command"] == "CouponCreated"


async def test_writes_within_one_millisecond_keep_their_order(
    api: ApiHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database keeps times to the millisecond, so writes that close together tie on `at`:
    the record id must still list them newest first."""
    moment = datetime(2026, 11, 22, 12, 0, 0, 123000, tzinfo=UTC)

    class _Frozen(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def]
            return moment

    monkeypatch.setattr(audit, "datetime", _Frozen)
    for n in range(12):
        await record_write(api.ctx, request("/v1/tenants/acme/credits", f"tick-{n}"), WHO,
                           "credit.grant", "tenant:acme", {"amount": str(n)})
    token = await api.key("super")
    response = await api.client.get("/v1/audit", params={"limit": 100}, headers=api.auth(token))
    listed = [e["request_id"] for e in response.json()["data"] if e["source"] == "api"]
    assert listed == [f"tick-{n}" for n in reversed(range(12))]
