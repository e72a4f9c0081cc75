"""The authorisation matrix: every `/v1` endpoint x every role, plus no key and a bad key,
generated from the one table `ACCESS` (a new endpoint without a row fails
`test_every_v1_route_has_a_row`).

Each row: method, path template, the roles allowed, whether the path names a tenant's resource
(`{tenant_id}`, `{invoice_number}` or a `tenant_id` query), and a sample JSON body. Path
parameters are filled from `SAMPLES`: `matrix-a` is the tenant key's own tenant, `matrix-b`
another tenant. Expected:
- an allowed role: neither 401 nor 403 (and for tenant-scoped rows, a tenant key gets its own
  tenant's resource, not 404, while another tenant's is 404, as if it did not exist);
- any other role: 403; no key or a malformed or unknown key: 401.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from services.api.app import create_app
from services.api.principal import ROLES
from services.api.settings import ApiSettings
from services.invoicer.adapters.catalog import COUPONS
from services.invoicer.api import run_cycle
from services.invoicer.handlers import apply_config
from tests.integration.test_invoicer_support import config, open_store, utc
from tests.support.api import ApiHarness, api_harness, module_settings
from tests.support.servers import Servers

pytestmark = pytest.mark.integration

OWN, OTHER = "matrix-a", "matrix-b"


@dataclass(frozen=True)
class Row:
    """One endpoint: who may call it, and whether it is a tenant's resource."""

    method: str
    path: str
    roles: frozenset[str]
    tenant_scoped: bool = False
    body: dict[str, Any] | None = field(default=None, hash=False)


def row(method: str, path: str, roles: str, tenant_scoped: bool = False,
        body: dict[str, Any] | None = None) -> Row:
    """A row; `roles` space-separated."""
    return Row(method, path, frozenset(roles.split()), tenant_scoped, body)


ACCESS: list[Row] = [
    row("GET", "/v1/audit", "super"),
    # reads (docs/api-endpoints.md)
    row("GET", "/v1/tenants", "super viewer"),
    row("GET", "/v1/tenants/{tenant_id}", "super viewer tenant", tenant_scoped=True),
    row("GET", "/v1/tenants/{tenant_id}/billing-config", "super viewer tenant",
        tenant_scoped=True),
    row("GET", "/v1/tenants/{tenant_id}/balance", "super viewer tenant", tenant_scoped=True),
    row("GET", "/v1/tenants/{tenant_id}/usage", "super viewer tenant", tenant_scoped=True),
    row("GET", "/v1/tenants/{tenant_id}/entitlements/{meter}", "super viewer tenant",
        tenant_scoped=True),
    row("GET", "/v1/invoices", "super viewer tenant"),
    row("GET", "/v1/invoices/{invoice_number}", "super viewer tenant", tenant_scoped=True),
    row("GET", "/v1/invoices/{invoice_number}/pdf", "super viewer tenant", tenant_scoped=True),
    row("GET", "/v1/dashboard", "super viewer"),
    # the portal (docs/portal.md)
    row("POST", "/v1/tenants/{tenant_id}/portal-sessions", "super viewer", tenant_scoped=True),
]

# writes (docs/api-endpoints.md, "Writes"); the payment row's sample invoice is not known to
# the payments service here, so its allowed role gets 404 (tenant_scoped False)
MATRIX_COUPON = {"_id": "Matrix5xQz", "amount_off": 100, "currency": "USD", "duration": "once",
                 "duration_in_periods": None, "max_redemptions": None, "redemptions": 0,
                 "redeemed_by": []}
ACCESS += [
    row("PUT", "/v1/tenants/{tenant_id}/billing-config", "super", tenant_scoped=True, body={
        "settings": {"flat_rate_amount": 1000, "currency": "USD", "billing_frequency": "monthly",
                     "billing_email": "billing@matrix.example", "auto_generate_invoices": True,
                     "billing_day_of_month": 1, "payment_due_days": 14,
                     "email_notifications": True},
        "timezone": "UTC", "effective_from": "2013-06-01",
        "price_plan": {"charges": [{"meter": "cpu_hours", "model": "per_unit",
                                    "unit_price": "0.50"}]}}),
    row("POST", "/v1/tenants/{tenant_id}/credits", "super", tenant_scoped=True,
        body={"amount": 100, "reason": "matrix"}),
    row("POST", "/v1/coupons", "super", body={
        "code": "Matrix7yKw", "amount_off": 100, "currency": "USD", "duration": "once"}),
    row("POST", "/v1/tenants/{tenant_id}/coupon", "super tenant", tenant_scoped=True,
        body={"code": "Matrix5xQz"}),
    row("POST", "/v1/invoices/{invoice_number}/payments", "super",
        body={"method": "ach", "reference": "MATRIX-1"}),
    # usage ingestion (docs/api-endpoints.md, "Usage ingestion")
    row("POST", "/v1/usage", "super ingest"),
    # paying from the portal (docs/api-endpoints.md, "Payments"): a foreign return URL makes
    # the allowed roles' answer 422 after the access checks, before any call to Stripe
    row("POST", "/v1/invoices/{invoice_number}/pay", "super tenant", tenant_scoped=True,
        body={"return_url": "https://elsewhere.example/back"}),
    row("GET", "/v1/tenants/{tenant_id}/payment-method", "super viewer tenant",
        tenant_scoped=True),
    row("POST", "/v1/tenants/{tenant_id}/payment-method/setup", "super tenant",
        tenant_scoped=True, body={"return_url": "https://elsewhere.example/back"}),
    # subscribing (docs/api-endpoints.md, "Subscriptions"): the reads answer 404 while the
    # tenant has no billing customer or subscription (so not tenant_scoped); an invalid body
    # or a foreign return URL makes the allowed roles' answer 422, before any call to Stripe
    row("GET", "/v1/tenants/{tenant_id}/billing-customer", "super viewer tenant"),
    row("PUT", "/v1/tenants/{tenant_id}/billing-customer", "super tenant",
        body={"name": "", "email": "not an email"}),
    row("GET", "/v1/tenants/{tenant_id}/subscription", "super viewer tenant"),
    row("POST", "/v1/tenants/{tenant_id}/subscription", "super tenant", tenant_scoped=True,
        body={"action": "start", "plan_code": "matrix",
              "success_url": "https://elsewhere.example/back"}),
    row("POST", "/v1/tenants/{tenant_id}/billing-portal-sessions", "super tenant",
        tenant_scoped=True, body={"return_url": "https://elsewhere.example/back"}),
    # operations (docs/api-endpoints.md, "Operations"); the sample tenants auto-generate, so
    # an issue without force is refused (409)
    row("GET", "/v1/dead-letters", "super viewer"),
    row("POST", "/v1/tenants/{tenant_id}/invoices", "super", tenant_scoped=True,
        body={"period_end": "2013-08-01"}),
]

# the plan catalog (docs/api-endpoints.md, "Plans"): `{code}` is a plan nobody created (404
# for the roles that may read)
ACCESS += [
    row("POST", "/v1/plans", "super", body={
        "code": "matrix-plan", "name": "Matrix", "currency": "USD",
        "billing_frequency": "monthly", "flat_amount": 1000}),
    row("GET", "/v1/plans", "super viewer tenant"),
    row("GET", "/v1/plans/{code}", "super viewer tenant"),
]


@dataclass
class Matrix:
    """The running API with one key per role and the seeded sample resources."""

    api: ApiHarness
    tokens: dict[str, str]
    samples: dict[str, dict[str, str]]  # tenant -> path parameter values

    def path(self, template: str, tenant: str) -> str:
        return template.format(**self.samples[tenant])


async def seed_samples(settings: ApiSettings) -> dict[str, dict[str, str]]:
    """Path parameter values per tenant (`tenant_id`, `invoice_number`), after seeding both
    tenants with the invoicer's own code: a configuration each and one issued invoice each
    (June 2013, issued by the cycle on July 1st)."""
    async with open_store(settings) as store:
        for tenant in (OWN, OTHER):
            await apply_config(store, config(tenant))
    await run_cycle(settings, utc(2013, 7, 1))
    async with open_store(settings) as store:
        await store.db[COUPONS].insert_one(MATRIX_COUPON)  # what the redemption row redeems
        numbers = {d["tenant_id"]: d["invoice_number"]
                   async for d in store.invoices.find({"tenant_id": {"$in": [OWN, OTHER]}})}
    assert set(numbers) == {OWN, OTHER}, numbers
    return {t: {"tenant_id": t, "invoice_number": numbers[t], "code": "matrix-none",
                "meter": "computations"}
            for t in (OWN, OTHER)}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def matrix(servers: Servers) -> AsyncIterator[Matrix]:
    """One API for the module: a key per role (the tenant key is `matrix-a`'s), samples."""
    settings = module_settings(servers)
    async with api_harness(settings) as api:
        tokens = {role: await api.key(role, tenant_id=OWN if role == "tenant" else None)
                  for role in ROLES}
        tokens["bad"] = "key_0123456789abcdef_" + "0" * 64
        yield Matrix(api, tokens, await seed_samples(settings))
        await api.ctx.client.drop_database(settings.mongo_db)


async def call(m: Matrix, r: Row, who: str, tenant: str = OWN) -> int:
    headers = m.api.auth(m.tokens[who]) if who != "none" else {}
    response = await m.api.client.request(r.method, m.path(r.path, tenant), json=r.body,
                                          headers=headers)
    return response.status_code


def _id(r: Row) -> str:
    return f"{r.method} {r.path}"


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("r", ACCESS, ids=_id)
async def test_each_role_gets_what_the_table_says(matrix: Matrix, r: Row) -> None:
    seen: dict[str, int] = {}
    for who in (*ROLES, "none", "bad"):
        seen[who] = await call(matrix, r, who)
    wrong = []
    for who, status in seen.items():
        if who in ("none", "bad"):
            ok = status == 401
        elif who in r.roles:
            ok = status not in (401, 403) and not (r.tenant_scoped and status == 404)
        else:
            ok = status == 403
        if not ok:
            wrong.append(f"{who}: {status}")
    assert not wrong, f"{_id(r)} answered {seen}"


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("r", [r for r in ACCESS if r.tenant_scoped and "tenant" in r.roles],
                         ids=_id)
async def test_a_tenant_key_gets_404_for_another_tenants_resource(
    matrix: Matrix, r: Row
) -> None:
    assert await call(matrix, r, "tenant", OTHER) == 404


def test_every_v1_route_has_a_row(billing_env: dict[str, str]) -> None:
    paths = create_app(ApiSettings()).openapi()["paths"]
    routes = {(method.upper(), path) for path, operations in paths.items()
              if path.startswith("/v1/") for method in operations}
    rows = {(r.method, r.path) for r in ACCESS}
    assert routes - rows == set(), "routes without a row in ACCESS"
    assert rows - routes == set(), "rows for routes that do not exist"
