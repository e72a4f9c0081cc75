"""The API's write endpoints against the real broker and database, with the invoicer worker
running: each accepted command is applied, refused requests answer 404/409/422 before anything
is published, every accepted write is audited (principal, request id, change)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.api.audit import COLLECTION as API_AUDIT
from services.invoicer.adapters.catalog import COUPONS
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.handlers import apply_config
from services.invoicer.reports import list_invoices
from services.invoicer.schedule import run_cycle
from services.payments.adapters.mongo_store import MongoPaymentsStore
from services.payments.domain import InvoiceRecord
from tests.integration.test_invoicer_support import config
from tests.support.api import ApiHarness
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
CODE = "Welcome5xQ"
CONFIG_BODY: dict[str, Any] = {
    "settings": {"flat_rate_amount": 2500, "currency": "USD", "billing_frequency": "monthly",
                 "billing_email": "billing@acme.example", "auto_generate_invoices": True,
                 "billing_day_of_month": 1, "payment_due_days": 30,
                 "email_notifications": False},
    "timezone": "Europe/Berlin", "effective_from": "2013-09-01",
    "price_plan": {"charges": [{"meter": "cpu_hours", "model": "per_unit",
                                "unit_price": "0.40"}]},
}


async def audited(api: ApiHarness, action: str) -> list[dict[str, Any]]:
    return await api.ctx.db[API_AUDIT].find({"action": action}).to_list()


async def test_a_configuration_is_validated_published_applied_and_audited(
    api: ApiHarness, invoicer: InvoicerStore,
) -> None:
    await apply_config(invoicer, config("acme", coupon={"code": "Config5xQ", "amount_off": 100,
                                                        "duration": "forever"}))
    token = await api.key("super", name="ops")
    headers = {**api.auth(token), "X-Request-Id": "req-config-1"}
    response = await api.client.put("/v1/tenants/acme/billing-config", json=CONFIG_BODY,
                                    headers=headers)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status_url"] == "/v1/tenants/acme/billing-config"

    async def version_2() -> dict[str, Any] | None:
        tenant = await invoicer.tenant("acme")
        return tenant if tenant and tenant["version"] == 2 else None

    tenant = await eventually(version_2, what="version 2 applied")
    assert tenant["config"]["event_id"] == body["submission_id"]
    assert tenant["config"]["settings"]["flat_rate_amount"] == 2500
    assert tenant["config"]["coupon"]["code"] == "Config5xQ"  # carried over
    assert tenant["config"]["actor"]["role"] == "super"
    assert tenant["config"]["actor"]["user_id"].startswith("key:")
    [record] = await audited(api, "billing_config.submit")
    assert record["request_id"] == "req-config-1" and record["actor"]["name"] == "ops"
    assert record["change"]["submission_id"] == body["submission_id"]
    assert record["change"]["timezone"] == "Europe/Berlin"

    new = await api.client.put("/v1/tenants/newco/billing-config", json=CONFIG_BODY,
                               headers=api.auth(token))
    assert new.status_code == 202  # an unknown tenant is created
    await eventually(lambda: invoicer.tenant("newco"), what="newco created")


async def test_invalid_configurations_answer_422_and_publish_nothing(api: ApiHarness) -> None:
    headers = api.auth(await api.key("super"))
    charge = CONFIG_BODY["price_plan"]["charges"][0]
    twice = {**CONFIG_BODY, "price_plan": {"charges": [charge, charge]}}
    bad_zone = {**CONFIG_BODY, "timezone": "Mars/Olympus"}
    bad_day = {**CONFIG_BODY, "settings": {**CONFIG_BODY["settings"], "billing_day_of_month": 0}}
    for body, needle in ((twice, "twice"), (bad_zone, "timezone"), (bad_day, "billing_day")):
        response = await api.client.put("/v1/tenants/acme/billing-config", json=body,
                                        headers=headers)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert needle in response.text
    assert await audited(api, "billing_config.submit") == []


async def test_a_credit_a_coupon_and_its_redemption_reduce_the_next_invoices(
    api: ApiHarness, invoicer: InvoicerStore,
) -> None:
    this_month = datetime.now(UTC).date().replace(day=1)
    await apply_config(invoicer, config("acme", effective_from=this_month.isoformat()))
    await apply_config(invoicer, config("globex", effective_from=this_month.isoformat()))
    ops = api.auth(await api.key("super"))
    acme = api.auth(await api.key("tenant", tenant_id="acme"))

    credit = await api.client.post("/v1/tenants/acme/credits", headers=ops,
                                   json={"amount": 1500, "reason": "outage in March"})
    assert credit.status_code == 202, credit.text
    coupon = {"code": CODE, "amount_off": 300, "currency": "USD", "duration": "repeating",
              "duration_in_periods": 2, "max_redemptions": 1}
    created = await api.client.post("/v1/coupons", headers=ops, json=coupon)
    assert created.status_code == 202, created.text
    await eventually(lambda: invoicer.db[COUPONS].find_one({"_id": CODE}), what="coupon")

    assert (await api.client.post("/v1/coupons", headers=ops, json=coupon)).status_code == 202
    other = await api.client.post("/v1/coupons", headers=ops, json={**coupon, "amount_off": 1})
    assert other.status_code == 409 and "amount_off" in other.json()["detail"]

    redeemed = await api.client.post("/v1/tenants/acme/coupon", headers=acme,
                                     json={"code": CODE})
    assert redeemed.status_code == 202, redeemed.text

    async def applied() -> dict[str, Any] | None:
        t = await invoicer.tenant("acme")
        return t if t and t.get("credit_balance") and t.get("redeemed_coupon") else None

    tenant = await eventually(applied, what="credit and redemption applied")
    [entry] = tenant["credit_balance"]
    assert (entry["amount"], entry["currency"], entry["reason"]) == (1500, "USD",
                                                                     "outage in March")
    assert entry["credit_id"] == credit.json()["submission_id"]
    assert tenant["redeemed_coupon"]["code"] == CODE
    assert tenant["redeemed_coupon"]["redeemed_at"] <= datetime.now(UTC)
    [record] = await audited(api, "coupon.redeem")
    assert record["actor"]["role"] == "tenant" and record["actor"]["tenant_id"] == "acme"
    shown = (await api.client.get("/v1/tenants/acme/billing-config", headers=ops)).json()
    assert shown["in_force"]["coupon"]["code"] == CODE
    assert [(c["credit_id"], c["amount"], c["remaining"])
            for c in shown["in_force"]["credits"]] == [(entry["credit_id"], 1500, 1500)]

    exhausted = await api.client.post("/v1/tenants/globex/coupon", headers=ops,
                                      json={"code": CODE})
    assert exhausted.status_code == 409

    # the next two monthly invoices (issued after the grant and the redemption): 10.00 flat,
    # 3.00 off each (repeating, 2 periods), the 15.00 credit takes the other 7.00 of each
    await run_cycle(invoicer, datetime.now(UTC) + timedelta(days=62))
    docs = [d for d in await list_invoices(invoicer) if d["tenant_id"] == "acme"]
    assert [(d["amount"], [(li["kind"], li["amount"]) for li in d["line_items"]
                           if li["kind"] in ("coupon", "credit")]) for d in docs[:2]] == [
        (0, [("coupon", -300), ("credit", -700)]), (0, [("coupon", -300), ("credit", -700)])]


async def test_refused_writes_answer_404_409_or_422(api: ApiHarness) -> None:
    store = InvoicerStore(api.ctx.client, api.ctx.db)
    await store.ensure_indexes()
    await apply_config(store, config("acme"))
    await apply_config(store, config("emea", settings={"currency": "EUR"}))
    ops = api.auth(await api.key("super"))
    acme = api.auth(await api.key("tenant", tenant_id="acme"))
    euro = {"code": "EuroDeal9x", "amount_off": 300, "currency": "EUR", "duration": "once"}

    async def status(method: str, path: str, body: dict[str, Any],
                     headers: dict[str, str] = ops) -> int:
        return (await api.client.request(method, path, json=body, headers=headers)).status_code

    assert await status("POST", "/v1/tenants/ghost/credits", {"amount": 1, "reason": "x"}) == 404
    assert await status("POST", "/v1/tenants/acme/credits", {"amount": 0, "reason": "x"}) == 422
    assert await status("POST", "/v1/coupons", {**euro, "code": "aaaaaaaaaa"}) == 422
    assert await status("POST", "/v1/coupons", {**euro, "duration": "repeating"}) == 422
    assert await status("POST", "/v1/tenants/acme/coupon", {"code": "NoSuch5xQ"}) == 404
    assert await status("POST", "/v1/tenants/ghost/coupon", {"code": "NoSuch5xQ"}) == 404
    assert await status("POST", "/v1/tenants/emea/coupon", {"code": "x1"}, acme) == 404
    await store.db[COUPONS].insert_one({"_id": "EuroDeal9x", "amount_off": 300,
                                        "currency": "EUR", "duration": "once",
                                        "redemptions": 0, "redeemed_by": []})
    assert await status("POST", "/v1/tenants/acme/coupon", {"code": "EuroDeal9x"}) == 422
    assert await status("POST", "/v1/invoices/INV-2099-0001/payments",
                        {"method": "ach", "reference": "R1"}) == 404
    assert await status("POST", "/v1/invoices/INV-2099-0001/payments",
                        {"method": "cheque", "reference": "R1"}) == 422
    assert await api.ctx.db[API_AUDIT].count_documents({}) == 0


async def test_a_manual_payment_is_recorded_once(api: ApiHarness) -> None:
    payments = MongoPaymentsStore(api.ctx.client, api.ctx.db)
    await payments.ensure_indexes()
    await payments.commit(record=InvoiceRecord(
        invoice_id="acme:2013-06-01", invoice_number="INV-2013-0001", tenant_id="acme",
        amount=1000, currency="USD", issued_at=datetime(2013, 7, 1, tzinfo=UTC)))
    ops = api.auth(await api.key("super"))
    body = {"method": "bank_transfer", "reference": "WIRE-778", "paid_on": "2013-07-10"}

    paid = await api.client.post("/v1/invoices/INV-2013-0001/payments", json=body, headers=ops)
    assert paid.status_code == 201, paid.text
    assert paid.json() == {"invoice_number": "INV-2013-0001", "tenant_id": "acme",
                           "status": "paid", "amount": 1000, "currency": "USD",
                           "payment_method": "bank_transfer", "payment_reference": "WIRE-778"}
    again = await api.client.post("/v1/invoices/INV-2013-0001/payments", json=body, headers=ops)
    assert again.status_code == 409
    [record] = await audited(api, "payment.record")
    assert record["target"] == "invoice:INV-2013-0001" and record["tenant_id"] == "acme"


async def test_a_repeated_idempotency_key_grants_the_credit_once(api: ApiHarness) -> None:
    store = InvoicerStore(api.ctx.client, api.ctx.db)
    await store.ensure_indexes()
    await apply_config(store, config("acme"))
    headers = {**api.auth(await api.key("super")), "Idempotency-Key": "grant-acme-1"}
    body = {"amount": 700, "reason": "late delivery"}
    first = await api.client.post("/v1/tenants/acme/credits", json=body, headers=headers)
    again = await api.client.post("/v1/tenants/acme/credits", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(await audited(api, "credit.grant")) == 1
    other = await api.client.post("/v1/tenants/acme/credits", json={**body, "amount": 1},
                                  headers=headers)
    assert other.status_code == 409
