"""The admin console's Plans pages against the real broker and database: the catalog and a
plan's versions for a viewer (read-only), and a super's form creating a plan and its next
version through the invoicer, with field errors and nothing published for invalid input."""

import re
from typing import Any

import pytest

from contracts import Actor, Plan, PlanSubmitted
from services.api.audit import COLLECTION as API_AUDIT
from services.invoicer.adapters.plans import plan_history
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.plan_handlers import apply_plan
from tests.integration.test_invoicer_support import utc
from tests.integration.test_portal_admin import csrf, sign_in
from tests.support.api import ApiHarness
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
STARTER = Plan.model_validate({
    "code": "starter", "name": "Starter", "currency": "USD", "billing_frequency": "monthly",
    "flat_amount": 2900, "limits": [{"meter": "computations", "limit": "1000", "hard": True}]})


def form(page: str, **fields: str) -> dict[str, str]:
    """The plan form's tokens, its pre-filled text fields and limit rows, with `fields`."""
    token = re.search(r'name="form_token" value="([^"]+)"', page)
    assert token, page
    data = {"csrf_token": csrf(page), "form_token": token.group(1)}
    for name, value in re.findall(r'<input id="[^"]*" name="([a-z_0-9]+)"[^>]*? value="([^"]*)"',
                                  page):
        if not name.startswith("limit_hard_"):  # checkboxes: sent only when checked
            data[name] = value
    for name, value in re.findall(r'<textarea id="[^"]*" name="([a-z_]+)"[^>]*>([^<]*)<',
                                  page):
        data[name] = value.replace("&#34;", '"')
    for name in re.findall(r'name="(limit_hard_\d+)" type="checkbox" value="on" checked', page):
        data[name] = "on"
    data["billing_frequency"] = "monthly"
    return {**data, **fields}


def error(page: str, name: str) -> str:
    found = re.search(rf'<p class="field-error" id="{name}-error" role="alert">([^<]*)<', page)
    assert found, (name, page)
    return found.group(1)


async def test_a_viewer_sees_the_catalog_and_versions_read_only(
    api: ApiHarness, invoicer: InvoicerStore,
) -> None:
    actor = Actor(user_id="key:ops", role="super")
    for n, flat in enumerate((2900, 4900), 1):
        await apply_plan(invoicer, PlanSubmitted(
            event_id=f"s{n}", occurred_at=utc(2026, 11, n), actor=actor,
            plan=STARTER.model_copy(update={"flat_amount": flat})))
    await sign_in(api, "viewer")
    listed = await api.client.get("/portal/admin/plans")
    assert listed.status_code == 200
    table = re.search(r'data-testid="plans-table".*?</table>', listed.text, re.S)
    assert table is not None
    assert "$49.00" in table.group(0) and "computations ≤ 1,000 (hard)" in table.group(0)
    assert 'href="/portal/admin/plans"' in listed.text and "New plan" not in listed.text

    page = await api.client.get("/portal/admin/plans/starter")
    versions = re.search(r'data-testid="plan-versions".*?</table>', page.text, re.S)
    assert versions is not None and "$29.00" in versions.group(0)
    assert versions.group(0).count("<tr>") == 3  # the header and two versions
    assert 'data-testid="plan-form"' not in page.text and "Read-only" in page.text
    assert (await api.client.get("/portal/admin/plans/new")).status_code == 403
    posted = await api.client.post("/portal/admin/plans", data={"csrf_token": csrf(page.text)})
    assert posted.status_code == 403
    assert (await api.client.get("/portal/admin/plans/nothing")).status_code == 404


async def test_a_super_creates_a_plan_and_its_next_version_from_the_form(
    api: ApiHarness, invoicer: InvoicerStore,
) -> None:
    await sign_in(api, "super")
    new = await api.client.get("/portal/admin/plans/new")
    assert new.status_code == 200 and new.text.count('name="limit_meter_') == 3
    fields: dict[str, Any] = {
        "code": "team", "name": "Team", "currency": "EUR", "flat_amount": "19.90",
        "limit_meter_0": "computations", "limit_value_0": "5000", "limit_hard_0": "on",
        "limit_meter_1": "storage_gb", "limit_value_1": "500",
        "charges": '[{"meter": "computations", "model": "per_unit", "unit_price": "0.002"}]'}
    data = form(new.text, **fields)
    created = await api.client.post("/portal/admin/plans", data=data)
    assert created.status_code == 303, created.text
    assert created.headers["location"] == "/portal/admin/plans"
    again = await api.client.post("/portal/admin/plans", data=data)  # the same form twice
    assert again.status_code == 303
    assert "sent already" in (await api.client.get("/portal/admin/plans")).text

    async def stored(count: int) -> bool:
        return len(await plan_history(invoicer.db, "team")) == count

    await eventually(lambda: stored(1), what="version 1")
    [first] = await plan_history(invoicer.db, "team")
    assert (first.plan.flat_amount, first.plan.currency) == (1990, "EUR")
    assert [(lim.meter, str(lim.limit), lim.hard) for lim in first.plan.limits] == [
        ("computations", "5000", True), ("storage_gb", "500", False)]
    assert first.plan.price_plan.charges[0].meter == "computations"

    page = await api.client.get("/portal/admin/plans/team")
    assert 'readonly' in page.text and 'value="19.90"' in page.text
    nxt = await api.client.post("/portal/admin/plans",
                                data=form(page.text, flat_amount="24.90", name="Team plus"))
    assert nxt.status_code == 303, re.findall(r"field-error[^<]*<", nxt.text)
    assert nxt.headers["location"] == "/portal/admin/plans/team"
    await eventually(lambda: stored(2), what="version 2")
    newest = (await plan_history(invoicer.db, "team"))[-1]
    assert (newest.version, newest.plan.flat_amount, newest.plan.name) == (2, 2490, "Team plus")
    assert newest.plan.limits == first.plan.limits  # the pre-filled rows were kept
    assert await api.ctx.db[API_AUDIT].count_documents({"action": "plan.submit"}) == 2


async def test_invalid_forms_show_field_errors_and_publish_nothing(api: ApiHarness) -> None:
    await sign_in(api, "super")
    new = (await api.client.get("/portal/admin/plans/new")).text
    base = {"code": "team", "name": "Team", "currency": "USD", "flat_amount": "10"}
    cases = [
        ({"flat_amount": "29.001"}, "flat_amount", "fewer decimal places"),
        ({"code": "Team Plan"}, "code", "a plan code"),
        ({"currency": "ZZZ"}, "currency", "ISO 4217"),
        ({"limit_meter_0": "computations", "limit_value_0": "10", "limit_meter_1":
          "computations", "limit_value_1": "20"}, "limits", "one limit per meter"),
        ({"limit_meter_0": "computations", "limit_value_0": "-1"}, "limits", "greater than"),
        ({"charges": "[{"}, "charges", "not valid JSON"),
        ({"charges": '[{"meter": "a", "model": "per_unit"}]'}, "charges", "unit_price"),
    ]
    for change, name, needle in cases:
        response = await api.client.post("/portal/admin/plans",
                                         data=form(new, **{**base, **change}))
        assert response.status_code == 422, (change, response.text)
        assert needle in error(response.text, name), change
        assert f'aria-describedby="{name}-error"' in response.text or \
            f'{name}-error"' in response.text
    assert await api.ctx.db[API_AUDIT].count_documents({"action": "plan.submit"}) == 0
