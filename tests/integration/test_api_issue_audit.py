"""Operator-issued invoices and their audit trail against the real database
(`POST /v1/tenants/{tenant_id}/invoices`): an issue whose audit write failed is audited by
the retry that finds it issued, a refusal is audited, and a period end outside the dates the
platform bills is a 422, never a server error (docs/api-endpoints.md, "Operations")."""

from typing import Any

import pytest

from services.api import audit
from services.api.audit import COLLECTION as API_AUDIT
from services.api.routes import operations
from services.invoicer.handlers import apply_config
from services.invoicer.settings import InvoicerSettings
from tests.integration.test_api_operations import _issue, _tenant
from tests.integration.test_invoicer_support import config, open_store
from tests.support.api import ApiHarness

pytestmark = pytest.mark.integration


async def _audited(api: ApiHarness, action: str) -> list[dict[str, Any]]:
    return await api.ctx.db[API_AUDIT].find({"action": action}).to_list()


async def test_an_issue_whose_audit_failed_is_audited_once_by_the_retry(
    api: ApiHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _tenant("initech", auto_generate_invoices=False)
    token = await api.key("super", name="ops")

    async def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("audit store down")

    monkeypatch.setattr(operations, "record_write", broken)
    failed = await _issue(api, token, "initech", period_end="2013-07-01")
    assert failed.status_code == 500  # the invoice exists, its audit entry does not
    assert await _audited(api, "invoice.issue") == []
    monkeypatch.setattr(operations, "record_write", audit.record_write)

    retried = await _issue(api, token, "initech", period_end="2013-07-01")
    assert retried.status_code == 200 and retried.json()["outcome"] == "already_issued"
    number = retried.json()["invoice_number"]
    again = await _issue(api, token, "initech", period_end="2013-07-01")
    assert again.status_code == 200
    [record] = await _audited(api, "invoice.issue")
    assert record["change"]["invoice_number"] == number
    assert record["change"]["period_end"] == "2013-07-01"
    assert record["target"] == "tenant:initech"


async def test_an_audited_issue_is_not_audited_again_by_a_retry(api: ApiHarness) -> None:
    await _tenant("initech", auto_generate_invoices=False)
    token = await api.key("super")
    assert (await _issue(api, token, "initech", period_end="2013-07-01")).status_code == 201
    assert (await _issue(api, token, "initech", period_end="2013-07-01")).status_code == 200
    assert len(await _audited(api, "invoice.issue")) == 1


async def test_a_refused_issue_is_audited_with_its_reason(api: ApiHarness) -> None:
    await _tenant("initech", auto_generate_invoices=False)
    token = await api.key("super", name="ops")
    refused = await _issue(api, token, "initech", period_end="2013-07-15")
    assert refused.status_code == 409
    [record] = await _audited(api, "invoice.issue.refused")
    assert record["target"] == "tenant:initech" and record["actor"]["name"] == "ops"
    assert record["change"]["period_end"] == "2013-07-15"
    assert "no billing period" in record["change"]["detail"]
    assert await _audited(api, "invoice.issue") == []


@pytest.mark.parametrize("period_end", ["0001-01-01", "1969-12-31", "9999-12-31"])
async def test_a_period_end_outside_the_billed_years_is_a_422(
    api: ApiHarness, period_end: str,
) -> None:
    async with open_store(InvoicerSettings()) as store:
        await apply_config(store, config("initech", timezone="Asia/Tokyo",
                                         settings={"auto_generate_invoices": False}))
    token = await api.key("super")
    answer = await _issue(api, token, "initech", period_end=period_end)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["loc"] == ["body", "period_end"]


async def test_date_overflow_in_a_far_east_zone_is_a_422(
    api: ApiHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _tenant("initech", auto_generate_invoices=False)
    token = await api.key("super")

    async def overflow(*args: Any, **kwargs: Any) -> Any:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(operations.invoicer, "issue_period", overflow)
    answer = await _issue(api, token, "initech", period_end="2013-07-01")
    assert answer.status_code == 422, answer.text
    assert "out of range" in answer.json()["detail"]
