"""`GET /v1/tenants/{tenant_id}/entitlements/{meter}` and the dashboard's tenants at or over
a limit (docs/limits.md)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from contracts.plans import PlanLimit, UsageLimitsChanged, UsageLimitWindow
from contracts.usage import UsageRecorded
from services.usage_collector.adapters.limits_update import apply_limits
from services.usage_collector.api import record_usage
from tests.integration.test_portal_admin import sign_in
from tests.support.api import ApiHarness

pytestmark = pytest.mark.integration


def usage(n: int, tenant: str, qty: str, at: datetime) -> UsageRecorded:
    return UsageRecorded.model_validate({
        "specversion": "1.0", "id": f"u-{tenant}-{n}", "source": "jobs", "type": "billing.usage",
        "subject": tenant, "time": at.isoformat(),
        "data": {"meter": "cpu_hours", "quantity": qty, "service": "jobs"}})


async def limited(api: ApiHarness, tenant: str, used: str, hard: bool = True) -> datetime:
    """`tenant` with a 10 vCPU-hour limit this period and `used` of it; the period's start."""
    now = datetime.now(UTC)
    start = now - timedelta(days=1)
    await apply_limits(api.ctx.db, UsageLimitsChanged(tenant_id=tenant, version=1, windows=(
        UsageLimitWindow(period_start=start, period_end=now + timedelta(days=29), limits=(
            PlanLimit(meter="cpu_hours", limit=Decimal(10), hard=hard),)),)), now)
    await record_usage(api.ctx.db, [usage(1, tenant, used, now)])
    return start


async def test_the_entitlement_answers_the_limit_usage_and_refusal(api: ApiHarness) -> None:
    start = await limited(api, "acme", "10")
    token = await api.key("tenant", tenant_id="acme")
    response = await api.client.get("/v1/tenants/acme/entitlements/cpu_hours",
                                    headers=api.auth(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("tenant_id", "meter", "limit", "used", "remaining",
                                 "allowed", "hard")} == {
        "tenant_id": "acme", "meter": "cpu_hours", "limit": "10", "used": "10",
        "remaining": "0", "allowed": False, "hard": True}
    assert datetime.fromisoformat(body["period_start"]) == start.replace(
        microsecond=start.microsecond // 1000 * 1000)


async def test_a_meter_without_limit_and_a_tenant_without_plan_are_allowed(
    api: ApiHarness,
) -> None:
    await limited(api, "acme", "3")
    token = await api.key("viewer")
    other = await api.client.get("/v1/tenants/acme/entitlements/computations",
                                 headers=api.auth(token))
    assert other.status_code == 200
    assert (other.json()["limit"], other.json()["used"], other.json()["allowed"]) == (
        None, "0", True)
    none = await api.client.get("/v1/tenants/nobody/entitlements/cpu_hours",
                                headers=api.auth(token))
    assert none.status_code == 200
    assert (none.json()["limit"], none.json()["used"], none.json()["allowed"]) == (
        None, None, True)


async def test_another_tenant_is_not_found_and_a_bad_meter_is_unprocessable(
    api: ApiHarness,
) -> None:
    await limited(api, "acme", "3")
    token = await api.key("tenant", tenant_id="globex")
    response = await api.client.get("/v1/tenants/acme/entitlements/cpu_hours",
                                    headers=api.auth(token))
    assert response.status_code == 404
    staff = await api.key("super")
    bad = await api.client.get("/v1/tenants/acme/entitlements/CPU%20Hours",
                               headers=api.auth(staff))
    assert bad.status_code == 422


async def test_the_dashboard_lists_tenants_at_or_over_a_limit(api: ApiHarness) -> None:
    await limited(api, "acme", "7.9")
    await limited(api, "globex", "8")
    await limited(api, "hooli", "12", hard=False)
    token = await api.key("viewer")
    response = await api.client.get("/v1/dashboard", headers=api.auth(token))
    assert response.status_code == 200, response.text
    rows = response.json()["tenants_at_limits"]
    assert [(r["tenant_id"], r["used"], r["percent"], r["allowed"]) for r in rows] == [
        ("hooli", "12", 120, True), ("globex", "8", 80, True)]


async def test_the_admin_billing_page_lists_tenants_at_or_over_a_limit(api: ApiHarness) -> None:
    await limited(api, "acme", "7.9")
    await limited(api, "globex", "10")
    await sign_in(api, "viewer")
    page = (await api.client.get("/portal/admin/billing")).text
    table = page.split('data-testid="tenants-at-limits"')[1].split("</table>")[0]
    assert 'href="/portal/admin/tenants/globex"' in table and "acme" not in table
    assert "100 %" in table and "refused" in table and "hard" in table


async def test_the_admin_billing_page_says_when_no_tenant_is_near_a_limit(
    api: ApiHarness,
) -> None:
    await sign_in(api, "viewer")
    page = (await api.client.get("/portal/admin/billing")).text
    table = page.split('data-testid="tenants-at-limits"')[1].split("</table>")[0]
    assert "No tenant has used 80 % of a limit this period." in table
