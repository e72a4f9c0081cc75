"""Operations endpoints against the real broker and database: the dead letters the API keeps
from the dead-letter topic (`GET /v1/dead-letters`) and operator-issued invoices
(`POST /v1/tenants/{tenant_id}/invoices`)."""

from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from contracts import TOPIC_DEAD_LETTER
from contracts.base import utc_now
from services.api.audit import COLLECTION as API_AUDIT
from services.api.deadletters import COLLECTION as DEAD_LETTERS
from services.common.deadletter import DeadLetter, MessageSource, dead_letter_event
from services.common.worker import publish_event, publish_raw
from services.invoicer.handlers import apply_config
from services.invoicer.settings import InvoicerSettings
from tests.integration.test_invoicer_support import config, open_store
from tests.support.api import ApiHarness
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


def _unreadable() -> float:
    return REGISTRY.get_sample_value("billing_api_dead_letters_unreadable_total") or 0.0


async def publish_dead_letter(api: ApiHarness, reason: str, detail: str, key: str = "acme",
                              **fields: Any) -> str:
    """Publish a `DeadLettered` event as a worker would; returns its event id."""
    source = MessageSource(topic="t.billing.usage.v1", partition=0, offset=7,
                           key=key.encode(), value=b'{"broken": ')
    event = dead_letter_event("invoicer", DeadLetter(source, reason, detail))
    if fields:
        event = event.model_copy(update=fields)
    await publish_event(api.ctx.broker, api.ctx.settings, event, TOPIC_DEAD_LETTER, key)
    return event.event_id


async def _listed(api: ApiHarness, token: str, query: str = "") -> list[dict[str, Any]]:
    response = await api.client.get(f"/v1/dead-letters{query}", headers=api.auth(token))
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def test_dead_letters_are_kept_once_and_listed_newest_first(
    dead_letter_api: ApiHarness,
) -> None:
    api = dead_letter_api
    viewer = await api.key("viewer")
    now = utc_now()  # the database keeps milliseconds: two letters a second apart
    first = await publish_dead_letter(api, "invalid_json", "Expecting value: line 1",
                                      occurred_at=now - timedelta(seconds=1))
    second = await publish_dead_letter(api, "validation_error", "quantity: must be >= 0",
                                       occurred_at=now)
    old = await publish_dead_letter(api, "forbidden", "a viewer's command",
                                    occurred_at=utc_now() - timedelta(days=2))

    async def three() -> list[dict[str, Any]]:
        return await api.ctx.db[DEAD_LETTERS].find().to_list() if (
            await api.ctx.db[DEAD_LETTERS].count_documents({}) == 3) else []

    await eventually(three, what="three dead letters stored")
    rows = await _listed(api, viewer)
    assert [r["event_id"] for r in rows] == [second, first]  # the last 24 h, newest first
    assert rows[0]["reason"] == "validation_error" and rows[0]["key"] == "acme"
    assert rows[0]["service"] == "invoicer" and rows[0]["topic"] == "t.billing.usage.v1"
    since = (utc_now() - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    everything = await _listed(api, viewer, f"?since={since}&limit=2")
    assert [r["event_id"] for r in everything] == [second, first]
    response = await api.client.get(f"/v1/dead-letters?since={since}&limit=2",
                                    headers=api.auth(viewer))
    cursor = response.json()["next_cursor"]
    assert [r["event_id"] for r in await _listed(api, viewer, f"?since={since}&cursor="
                                                 f"{cursor}")] == [old]
    naive = await api.client.get("/v1/dead-letters?since=2026-01-01T00:00:00",
                                 headers=api.auth(viewer))
    assert naive.status_code == 422

    # a redelivery (same event id, other fields) changes nothing
    await publish_dead_letter(api, "invalid_json", "changed", event_id=first)
    marker = await publish_dead_letter(api, "internal_error", "after the redelivery")
    await eventually(lambda: api.ctx.db[DEAD_LETTERS].find_one({"_id": marker}),
                     what="the dead letter after the redelivery")
    stored = await api.ctx.db[DEAD_LETTERS].find_one({"_id": first})
    assert stored is not None and stored["detail"] == "Expecting value: line 1"
    assert stored["expires_at"] - stored["occurred_at"] == timedelta(days=7)


async def test_an_unreadable_record_is_counted_and_skipped(
    dead_letter_api: ApiHarness,
) -> None:
    api = dead_letter_api
    before = _unreadable()
    topic = api.ctx.settings.topic(TOPIC_DEAD_LETTER)
    await publish_raw(api.ctx.broker, topic, b"acme", b"not json at all", [])
    await publish_raw(api.ctx.broker, topic, b"acme", b'{"reason": "x"}',
                      [("event-type", b"DeadLettered")])
    after = await publish_dead_letter(api, "invalid_json", "the one after")
    await eventually(lambda: _unreadable() >= before + 2, what="two unreadable records counted")
    await eventually(lambda: api.ctx.db[DEAD_LETTERS].find_one({"_id": after}),
                     what="the next dead letter stored (the consumer moved on)")
    assert await api.ctx.db[DEAD_LETTERS].count_documents({}) == 1
    dead = REGISTRY.get_sample_value("billing_dead_letters_total",
                                     {"service": "api", "reason": "invalid_json"})
    assert not dead  # never dead-lettered again


async def _tenant(tenant_id: str, **settings: Any) -> None:
    async with open_store(InvoicerSettings()) as store:
        await apply_config(store, config(tenant_id, settings=settings))


async def _issue(api: ApiHarness, token: str, tenant: str, **body: Any) -> Any:
    return await api.client.post(f"/v1/tenants/{tenant}/invoices", json=body,
                                 headers=api.auth(token))


async def test_an_operator_issues_an_invoice_once_with_the_cli_rules(api: ApiHarness) -> None:
    await _tenant("initech", auto_generate_invoices=False)
    token = await api.key("super", name="ops")
    issued = await _issue(api, token, "initech", period_end="2013-07-01")
    assert issued.status_code == 201, issued.text
    number = issued.json()["invoice_number"]
    assert issued.json()["outcome"] == "issued" and number.startswith("INV-")
    again = await _issue(api, token, "initech", period_end="2013-07-01")
    assert again.status_code == 200
    assert again.json() == {**issued.json(), "outcome": "already_issued"}
    gap = await _issue(api, token, "initech", period_end="2013-09-01")
    assert gap.status_code == 409 and "unbilled" in gap.json()["detail"]
    off_grid = await _issue(api, token, "initech", period_end="2013-07-15")
    assert off_grid.status_code == 409 and "no billing period" in off_grid.json()["detail"]
    future = await _issue(api, token, "initech", period_end="2999-01-01")
    assert future.status_code == 409
    assert (await _issue(api, token, "nobody", period_end="2013-07-01")).status_code == 404
    [record] = await api.ctx.db[API_AUDIT].find({"action": "invoice.issue"}).to_list()
    assert record["target"] == "tenant:initech" and record["actor"]["name"] == "ops"
    assert record["change"]["invoice_number"] == number


async def test_an_auto_generating_tenant_needs_force_and_a_reason(api: ApiHarness) -> None:
    await _tenant("acme")
    token = await api.key("super")
    refused = await _issue(api, token, "acme", period_end="2013-07-01")
    assert refused.status_code == 409 and "automatically" in refused.json()["detail"]
    no_reason = await _issue(api, token, "acme", period_end="2013-07-01", force=True)
    assert no_reason.status_code == 422
    assert await api.ctx.db[API_AUDIT].count_documents({"action": "invoice.issue"}) == 0
    [refusal] = await api.ctx.db[API_AUDIT].find({"action": "invoice.issue.refused"}).to_list()
    assert "automatically" in refusal["change"]["detail"]
    forced = await _issue(api, token, "acme", period_end="2013-07-01", force=True,
                          reason="customer asked for an early invoice")
    assert forced.status_code == 201, forced.text
    async with open_store(InvoicerSettings()) as store:
        audit = await store.db["invoicer_audit"].find_one({"decision": "forced"})
    assert audit is not None and audit["why"]["reason"] == "customer asked for an early invoice"
    assert audit["invoice_number"] == forced.json()["invoice_number"]
    [record] = await api.ctx.db[API_AUDIT].find({"action": "invoice.issue"}).to_list()
    assert record["change"]["force"] is True
