"""The read endpoints on the real database: tenants, billing configuration, invoices (JSON,
PDF), balance, usage and the dashboard, with paging, 404s and 422s; the usage estimate of an
invoiced period equals the invoice the cycle issued; a tenant key enumerating invoice numbers
learns nothing. One API and one seeded database for the module (`reads_support.seed`)."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import InvalidOperation
from typing import Any

import pytest
import pytest_asyncio

from services.api.ingest_counts import add_accepted
from services.common.invoice_pdf import render_invoice_pdf
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.api import pdf_bytes
from services.invoicer.document import pricing_of
from services.invoicer.periods import Period
from services.invoicer.views import store_of
from tests.integration.reads_support import Seeded, seed
from tests.integration.test_invoicer_support import utc
from tests.support.api import ApiHarness, api_harness, module_settings
from tests.support.servers import Servers

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@dataclass
class Reads:
    """The running API, the seed and a key per reader (`acme` and `umbrella` tenant keys)."""

    api: ApiHarness
    seeded: Seeded
    tokens: dict[str, str]

    async def get(self, path: str, who: str = "viewer", **params: Any) -> Any:
        return await self.api.client.get(path, params=params,
                                         headers=self.api.auth(self.tokens[who]))

    def number(self, tenant: str, issued: str) -> str:
        return self.seeded.numbers[(tenant, issued)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def reads(servers: Servers) -> AsyncIterator[Reads]:
    settings = module_settings(servers)
    async with api_harness(settings) as api:
        seeded = await seed(InvoicerStore(api.ctx.client, api.ctx.db))
        tokens = {"viewer": await api.key("viewer"), "super": await api.key("super"),
                  "acme": await api.key("tenant", tenant_id="acme"),
                  "umbrella": await api.key("tenant", tenant_id="umbrella"),
                  "ingest": await api.key("ingest")}
        yield Reads(api, seeded, tokens)
        await api.ctx.client.drop_database(settings.mongo_db)


async def test_tenants_page_by_cursor_and_search(reads: Reads) -> None:
    first = await reads.get("/v1/tenants", limit=2)
    assert first.status_code == 200
    body = first.json()
    assert [t["tenant_id"] for t in body["data"]] == ["acme", "globex"]
    rest = (await reads.get("/v1/tenants", limit=2, cursor=body["next_cursor"])).json()
    assert [t["tenant_id"] for t in rest["data"]] == ["umbrella"] and rest["next_cursor"] is None
    found = (await reads.get("/v1/tenants", q="GLOB")).json()["data"]
    assert [(t["tenant_id"], t["currency"], t["timezone"]) for t in found] == [
        ("globex", "EUR", "Europe/Berlin")]
    acme = (await reads.get("/v1/tenants/acme", who="acme")).json()
    july = (await reads.get(f"/v1/invoices/{reads.number('acme', '2013-08-01')}")).json()
    assert acme["outstanding"] == [july["total"]] and acme["overdue_count"] == 0
    assert acme["config_version"] == 1 and acme["billing_frequency"] == "monthly"
    assert (await reads.get("/v1/tenants", limit=0)).status_code == 422
    assert (await reads.get("/v1/tenants", cursor="not-a-cursor")).status_code == 400


async def test_tenant_reads_are_404_for_unknown_and_other_tenants(reads: Reads) -> None:
    for path in ("/v1/tenants/{}", "/v1/tenants/{}/billing-config", "/v1/tenants/{}/balance",
                 "/v1/tenants/{}/usage"):
        assert (await reads.get(path.format("nobody"))).status_code == 404
        other = await reads.get(path.format("acme"), who="umbrella")
        assert other.status_code == 404
        assert other.headers["content-type"].startswith("application/problem+json")
        assert (await reads.get(path.format("umbrella"), who="umbrella")).status_code == 200


async def test_billing_config_shows_the_version_in_force_history_and_outcomes(
    reads: Reads,
) -> None:
    body = (await reads.get("/v1/tenants/acme/billing-config")).json()
    assert body["current_version"] == 1 and body["in_force"]["version"] == 1
    in_force = body["in_force"]
    assert in_force["settings"]["flat_rate_amount"] == 1000
    assert (in_force["timezone"], in_force["effective_from"]) == ("UTC", "2013-06-01")
    assert [c["meter"] for c in in_force["price_plan"]["charges"]] == [
        "cpu_hours", "memory_gb_hours"]
    assert [(h["version"], h["event_id"]) for h in body["history"]] == [
        (1, reads.seeded.applied_event_id)]
    assert body["submissions"][reads.seeded.applied_event_id]["outcome"] == "applied"
    refused = body["submissions"][reads.seeded.refused_event_id]
    assert (refused["outcome"], refused["reason"]) == ("refused", "forbidden")
    assert body["history"][0]["actor"]["role"] == "super"
    own = (await reads.get("/v1/tenants/acme/billing-config", who="acme")).json()
    assert own["in_force"] == in_force and own["submissions"] == {}
    assert [(h["version"], h["actor"]) for h in own["history"]] == [(1, None)]


async def test_invoices_filter_page_and_keep_tenant_keys_to_their_own(reads: Reads) -> None:
    everything = (await reads.get("/v1/invoices")).json()["data"]
    assert {i["tenant_id"] for i in everything} == {"acme", "globex", "umbrella"}
    paid = (await reads.get("/v1/invoices", status="paid")).json()["data"]
    assert [i["invoice_number"] for i in paid] == [reads.number("acme", "2013-07-01")]
    unpaid = (await reads.get("/v1/invoices", status="unpaid", tenant_id="acme")).json()
    assert [i["invoice_number"] for i in unpaid["data"]] == [reads.number("acme", "2013-08-01")]
    own = (await reads.get("/v1/invoices", who="acme", limit=1)).json()
    nxt = (await reads.get("/v1/invoices", who="acme", limit=1, cursor=own["next_cursor"]))
    numbers = [i["invoice_number"] for i in own["data"] + nxt.json()["data"]]
    assert numbers == [reads.number("acme", "2013-07-01"), reads.number("acme", "2013-08-01")]
    assert nxt.json()["next_cursor"] is None
    assert (await reads.get("/v1/invoices", who="acme", tenant_id="acme")).status_code == 200
    assert (await reads.get("/v1/invoices", who="acme", tenant_id="globex")).status_code == 404
    bad = await reads.get("/v1/invoices", status="open")
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "status"]


async def test_invoice_detail_and_pdf(reads: Reads) -> None:
    number = reads.number("acme", "2013-07-01")
    body = (await reads.get(f"/v1/invoices/{number}", who="acme")).json()
    assert body["status"] == "paid" and body["payment_reference"] == "pi_1"
    assert body["payment_method"] == "card visa 4242" and body["paid_date"] == "2013-07-02"
    cpu = next(li for li in body["line_items"] if li["meter"] == "cpu_hours")
    assert (cpu["quantity"], cpu["unit"], cpu["unit_price"]) == ("12.25", "vCPU-hours", "0.50")
    assert cpu["amount"] == {"amount": 613, "currency": "USD", "formatted": "$6.13"}
    assert body["subtotal"]["amount"] == body["total"]["amount"]
    assert [(e["event"], e["status"]) for e in body["timeline"]] == [
        ("issued", "pending_payment"), ("status_changed", "overdue"),
        ("status_changed", "paid")]
    assert body["timeline"][2]["cause"] == "pay-1"
    pdf = await reads.get(f"/v1/invoices/{number}/pdf", who="acme")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    doc = await reads.api.ctx.db["invoicer_invoices"].find_one({"invoice_number": number})
    assert pdf.content[:5] == b"%PDF-"
    pricing = await pricing_of(store_of(reads.api.ctx.db), doc)
    assert pricing["memory_gb_hours"].tiers  # the graduated line's tiers are on the document
    assert len(pdf.content) == len(pdf_bytes(doc, render_invoice_pdf, pricing=pricing))


async def test_a_tenant_key_enumerating_invoice_numbers_learns_nothing(reads: Reads) -> None:
    others = [reads.number("acme", "2013-07-01"), reads.number("globex", "2013-07-01")]
    missing = ["INV-2013-0999", "INV-2099-0001"]
    for suffix in ("", "/pdf"):
        answers = []
        for number in others + missing:
            response = await reads.get(f"/v1/invoices/{number}{suffix}", who="umbrella")
            body = response.json()
            answers.append((response.status_code, response.headers["content-type"],
                            sorted(body), body["title"],
                            body["detail"].replace(number, "N"),
                            body["instance"].replace(number, "N")))
        assert answers[0][0] == 404
        assert all(a == answers[0] for a in answers), answers


async def test_balance_per_currency(reads: Reads) -> None:
    body = (await reads.get("/v1/tenants/acme/balance", who="acme")).json()
    june = (await reads.get(f"/v1/invoices/{reads.number('acme', '2013-07-01')}")).json()
    july = (await reads.get(f"/v1/invoices/{reads.number('acme', '2013-08-01')}")).json()
    assert body["total_paid"] == [june["total"]] and body["outstanding"] == [july["total"]]
    assert (body["overdue_count"], body["total_invoices"], body["total_refunded"]) == (0, 2, [])


async def test_usage_estimate_of_a_closed_period_equals_the_issued_invoice(
    reads: Reads,
) -> None:
    june = (await reads.get(f"/v1/invoices/{reads.number('acme', '2013-07-01')}")).json()
    view = await reads.get("/v1/tenants/acme/usage", who="acme",
                           **{"from": june["period_start"], "to": june["period_end"]})
    assert view.status_code == 200
    body = view.json()
    usage_lines = {li["meter"]: li for li in june["line_items"] if li["kind"] == "usage"}
    assert {m["meter"]: m["estimated_cost"] for m in body["meters"]} == {
        meter: li["amount"] for meter, li in usage_lines.items()}
    assert {m["meter"]: m["quantity"] for m in body["meters"]} == {
        meter: li["quantity"] for meter, li in usage_lines.items()}
    assert body["estimated_total"]["amount"] == sum(
        li["amount"]["amount"] for li in usage_lines.values())
    memory = next(m for m in body["meters"] if m["meter"] == "memory_gb_hours")
    assert memory["unit"] == "GB-hours"
    assert {s["service"]: s["quantity"] for s in memory["services"]} == {"db": "9", "web": "4.5"}
    assert body["as_of"] == "2013-06-20T23:00:00Z"
    named = await reads.get("/v1/tenants/acme/usage", range="last_month")
    assert named.status_code == 200 and named.json()["meters"]


@pytest.mark.parametrize("params", [
    {"range": "yesterday"},
    {"from": "2013-06-01T00:00:00Z"},
    {"from": "2013-06-02T00:00:00Z", "to": "2013-06-01T00:00:00Z"},
    {"from": "2013-01-01T00:00:00Z", "to": "2014-01-03T00:00:00Z"},
    {"range": "last_month", "from": "2013-06-01T00:00:00Z", "to": "2013-06-02T00:00:00Z"},
    {"from": "June", "to": "July"},
])
async def test_usage_parameters_out_of_bounds_are_422(
    reads: Reads, params: dict[str, str],
) -> None:
    response = await reads.get("/v1/tenants/acme/usage", **params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"]


async def test_dashboard_counts_revenue_and_reconciliation(reads: Reads) -> None:
    await add_accepted(reads.api.ctx.db, [
        ("acme", utc(2013, 7, 15, 10)), ("acme", utc(2013, 7, 31, 23, 59)),
        ("acme", utc(2013, 8, 1)), ("globex", utc(2013, 7, 20))])
    store = InvoicerStore(reads.api.ctx.client, reads.api.ctx.db)
    stuck = Period(utc(2013, 9, 1), utc(2013, 10, 1), date(2013, 9, 1), date(2013, 10, 1))
    await store.record_billing_error("umbrella", stuck, InvalidOperation("too large"), 1)
    body = (await reads.get("/v1/dashboard")).json()
    assert body["total_tenants"] == 3 and body["billing_errors"] == 1
    assert body["pending_invoices"] + body["overdue_invoices"] == 5  # one of six is paid
    [error] = body["open_billing_errors"]
    assert (error["tenant_id"], error["period_start"], error["later_periods_waiting"]) == (
        "umbrella", "2013-09-01T00:00:00+00:00", 1)
    rows = {r["tenant_id"]: r for r in body["reconciliation"]}
    last = rows["acme"]["last_invoiced"]
    assert last["invoice_number"] == reads.number("acme", "2013-08-01")
    # 31 July counts, 1 August (the next period's first day) does not
    assert last["events_aggregated"] == 2 and last["events_accepted_by_api"] == 2
    assert rows["globex"]["last_invoiced"]["events_accepted_by_api"] == 1
    assert rows["acme"]["current"]["events_accepted_by_api"] == 0
    assert last["quantity_billed"] == last["quantity_aggregated"] == {
        "cpu_hours": "1", "memory_gb_hours": "0"}
    assert (await reads.get("/v1/dashboard", who="acme")).status_code == 403
    assert (await reads.get("/v1/tenants", who="ingest")).status_code == 403
