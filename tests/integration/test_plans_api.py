"""The plan catalog's endpoints with the invoicer worker running: a super's plan becomes a
version, each role reads the catalog, invalid plans answer 422 and publish nothing, other roles
may not create."""

from typing import Any

import pytest

from services.api.audit import COLLECTION as API_AUDIT
from services.invoicer.adapters.plans import PLANS
from services.invoicer.adapters.store import InvoicerStore
from tests.support.api import ApiHarness
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
PLAN: dict[str, Any] = {
    "code": "starter", "name": "Starter", "description": "For small projects",
    "currency": "USD", "billing_frequency": "monthly", "flat_amount": 2900,
    "price_plan": {"charges": [{"meter": "computations", "model": "per_unit",
                                "unit_price": "0.01", "included_quantity": "100"}]},
    "limits": [{"meter": "computations", "limit": "1000", "hard": True},
               {"meter": "storage_gb", "limit": "500"}],
}


async def versions(invoicer: InvoicerStore, code: str) -> int:
    return await invoicer.db[PLANS].count_documents({"code": code})


async def test_a_super_creates_plans_and_every_reading_role_sees_them(
    api: ApiHarness, invoicer: InvoicerStore,
) -> None:
    admin = api.auth(await api.key("super", name="ops"))
    created = await api.client.post("/v1/plans", json=PLAN, headers=admin)
    assert created.status_code == 202, created.text
    body = created.json()
    assert body["code"] == "starter" and body["status_url"] == "/v1/plans/starter"
    await eventually(lambda: versions(invoicer, "starter"), what="version 1")
    dearer = {**PLAN, "flat_amount": 4900}
    assert (await api.client.post("/v1/plans", json=dearer, headers=admin)).status_code == 202

    async def two() -> bool:
        return await versions(invoicer, "starter") == 2

    await eventually(two, what="version 2")
    [record, _] = await api.ctx.db[API_AUDIT].find({"action": "plan.submit"}).sort(
        "at", 1).to_list()
    assert record["change"]["submission_id"] == body["submission_id"]

    for role in ("super", "viewer", "tenant"):
        headers = api.auth(await api.key(role, tenant_id="acme" if role == "tenant" else None))
        listed = await api.client.get("/v1/plans", headers=headers)
        assert listed.status_code == 200, listed.text
        [plan] = listed.json()
        assert (plan["code"], plan["version"], plan["flat_amount"], plan["currency"]) == (
            "starter", 2, 4900, "USD")
        assert plan["limits"][0] == {"meter": "computations", "limit": "1000", "hard": True}
        detail = (await api.client.get("/v1/plans/starter", headers=headers)).json()
        assert detail["version"] == 2
        assert [(v["version"], v["plan"]["flat_amount"]) for v in detail["versions"]] == [
            (1, 2900), (2, 4900)]
        assert all(v["submitted_by"].startswith("key:") for v in detail["versions"])
        missing = await api.client.get("/v1/plans/nothing", headers=headers)
        assert missing.status_code == 404


async def test_invalid_plans_answer_422_with_field_errors(api: ApiHarness) -> None:
    admin = api.auth(await api.key("super"))
    charge = PLAN["price_plan"]["charges"][0]
    cases: list[tuple[dict[str, Any], str]] = [
        ({**PLAN, "code": "Not A Code"}, "code"),
        ({**PLAN, "limits": [{"meter": "computations", "limit": "10"},
                             {"meter": "computations", "limit": "20"}]}, "one limit per meter"),
        ({**PLAN, "flat_amount": 29.5}, "flat_amount"),
        ({**PLAN, "currency": "XXQ"}, "currency"),
        ({**PLAN, "price_plan": {"charges": [charge, charge]}}, "twice"),
        ({**PLAN, "limits": [{"meter": "computations", "limit": "0"}]}, "limit"),
    ]
    for body, needle in cases:
        response = await api.client.post("/v1/plans", json=body, headers=admin)
        assert response.status_code == 422, (needle, response.text)
        problem = response.json()
        assert needle in str(problem["errors"]), (needle, problem)
    assert await api.ctx.db[API_AUDIT].count_documents({"action": "plan.submit"}) == 0


async def test_only_super_may_create_a_plan(api: ApiHarness) -> None:
    for role in ("viewer", "tenant", "ingest"):
        token = await api.key(role, tenant_id="acme" if role == "tenant" else None)
        response = await api.client.post("/v1/plans", json=PLAN, headers=api.auth(token))
        assert response.status_code == 403, (role, response.text)
    assert await api.ctx.db[API_AUDIT].count_documents({"action": "plan.submit"}) == 0


async def test_an_idempotency_key_replays_the_first_answer(
    api: ApiHarness, invoicer: InvoicerStore,
) -> None:
    headers = {**api.auth(await api.key("super")), "Idempotency-Key": "plan-starter-1"}
    first = await api.client.post("/v1/plans", json=PLAN, headers=headers)
    again = await api.client.post("/v1/plans", json=PLAN, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["submission_id"] == first.json()["submission_id"]
    assert await api.ctx.db[API_AUDIT].count_documents({"action": "plan.submit"}) == 1
    await eventually(lambda: versions(invoicer, "starter"), what="version 1")
