"""One suite for the invoicer's `InvoiceStore`, run against every implementation: in memory and
MongoDB (`InvoicerStore`, this test's database). What the use cases rely on: an issue takes the
year's next number, gapless, and is done once per (tenant, period); invoices read back by
number and filtered by status; status changes and the overdue move never go backwards; billing
errors are recorded and resolved by the issue of their period."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from contracts.invoices import InvoiceStatus
from services.common.settings import CommonSettings
from services.invoicer.adapters.invoice_store import InvoicerPorts, InvoiceStore, Read
from services.invoicer.adapters.memory_invoices import InMemoryInvoiceStore
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.adapters.tenant_ledger import InMemoryTenantLedger, TenantLedger, ledger_of
from services.invoicer.cycle import tenant_periods
from services.invoicer.domain import UNPAID, invoice_id
from services.invoicer.periods import Period
from services.invoicer.proration import price_period
from services.invoicer.records import IssueDraft
from services.invoicer.schedule import due_periods, mark_overdue, next_due
from tests.integration.test_invoicer_support import config
from tests.support.mongo import service_database

NOW = datetime(2013, 6, 1, tzinfo=UTC)
#: June to September 2013 of a monthly tenant starting 2013-06-01 (UTC).
JUNE, JULY, AUGUST, SEPTEMBER = tenant_periods(config("acme"), datetime(2013, 10, 1, tzinfo=UTC))


@dataclass
class Stores:
    """An `InvoiceStore` and the `TenantLedger` its issue moves (one `InvoicerStore` on
    MongoDB)."""

    invoices: InvoiceStore
    tenants: TenantLedger
    both: InvoicerPorts

    async def add_tenant(self, tenant_id: str) -> None:
        """Record the tenant's first configuration as the configuration handler does."""
        command = config(tenant_id)
        if isinstance(self.tenants, InvoicerStore):
            store = self.tenants
            await store.transaction(lambda s: store.add_config_version(command, 1, NOW, s))
        else:
            await self.tenants.add_config_version(command, 1, NOW, None)  # type: ignore[arg-type]

    async def issue(self, tenant_id: str, period: Period) -> str | None:
        """Issue the tenant's `period` (flat fee only, no usage) and return its number."""
        return await self.invoices.issue(invoice_id(tenant_id, period.start_date), tenant_id,
                                         period.end_date.year, self.reader(tenant_id, period))

    def reader(self, tenant_id: str, period: Period) -> Read:
        """What the cycle's read does, without usage: the version in force and the ledger,
        read in the transaction's session, priced."""
        async def read(session: object) -> IssueDraft | None:
            version = await self.tenants.config_in_force(tenant_id, period.end,
                                                         session)  # type: ignore[arg-type]
            ledger = await ledger_of(self.tenants, tenant_id, session)  # type: ignore[arg-type]
            assert version is not None and ledger is not None
            draft = price_period(version.command, period, ledger, {}, [], 0, 0)
            return IssueDraft(
                invoice_id=invoice_id(tenant_id, period.start_date), tenant_id=tenant_id,
                period=period, config=version.command, config_version=version.number,
                ledger=ledger, draft=draft, usage={}, marker=0, priced_at=NOW)
        return read


@pytest.fixture(params=[pytest.param("memory", marks=pytest.mark.unit),
                        pytest.param("mongo", marks=pytest.mark.integration)])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    """Each test runs once per implementation, with tenants acme and globex and no invoice."""
    if request.param == "memory":
        tenants = InMemoryTenantLedger()
        store = InMemoryInvoiceStore(tenants)
        memory = Stores(store, tenants, store)
        await memory.add_tenant("acme")
        await memory.add_tenant("globex")
        yield memory
        return
    settings: CommonSettings = request.getfixturevalue("common_settings")  # own database
    async with service_database(settings) as (client, db):
        store = InvoicerStore(client, db)
        await store.ensure_indexes()
        mongo = Stores(store, store, store)
        await mongo.add_tenant("acme")
        await mongo.add_tenant("globex")
        yield mongo


async def test_issues_take_gapless_numbers_and_a_period_is_issued_once(stores: Stores) -> None:
    assert await stores.issue("acme", JUNE) == "INV-2013-0001"
    assert await stores.issue("globex", JUNE) == "INV-2013-0002"
    assert await stores.issue("acme", JUNE) is None  # the same (tenant, period) again
    assert await stores.issue("acme", JULY) == "INV-2013-0003"  # no number was used up

    june = await stores.invoices.invoice(invoice_id("acme", JUNE.start_date))
    assert june is not None
    assert (june["invoice_number"], june["status"], june["amount"]) == (
        "INV-2013-0001", InvoiceStatus.pending_payment, 1000)
    tenant = await stores.tenants.tenant("acme")
    assert tenant is not None and tenant["ledger_rev"] == 2  # one ledger move per invoice
    assert await stores.invoices.last_invoiced_end("acme") == JULY.end


async def test_a_read_that_finds_nothing_to_issue_writes_nothing(stores: Stores) -> None:
    async def nothing(session: object) -> IssueDraft | None:
        return None

    inv_id = invoice_id("acme", JUNE.start_date)
    assert await stores.invoices.issue(inv_id, "acme", 2013, nothing) is None
    assert await stores.invoices.invoice(inv_id) is None
    assert await stores.issue("acme", JUNE) == "INV-2013-0001"


async def test_an_unconfigured_tenant_cannot_be_issued(stores: Stores) -> None:
    with pytest.raises(LookupError):
        await stores.issue("initech", JUNE)
    assert await stores.invoices.find_invoices() == []


async def test_an_invoice_is_found_by_its_number_or_its_id(stores: Stores) -> None:
    await stores.issue("acme", JUNE)
    number = await stores.issue("acme", JULY)
    assert number is not None

    by_number = await stores.invoices.invoice_by_number(number)
    by_id = await stores.invoices.invoice_by_number(invoice_id("acme", JULY.start_date))
    assert by_number is not None and by_number["_id"] == invoice_id("acme", JULY.start_date)
    assert by_id is not None and by_id["invoice_number"] == number
    assert await stores.invoices.invoice_by_number("INV-2013-0099") is None


async def test_a_status_change_never_goes_backwards(stores: Stores) -> None:
    await stores.issue("acme", JUNE)
    inv_id = invoice_id("acme", JUNE.start_date)
    at = datetime(2013, 7, 2, tzinfo=UTC)

    assert await stores.invoices.change_status(inv_id, "failed", at, "pay-1") == "failed"
    assert await stores.invoices.change_status(inv_id, "failed", at, "pay-2") is None
    assert await stores.invoices.change_status(inv_id, "succeeded", at, "pay-3") == "paid"
    assert await stores.invoices.change_status(inv_id, "failed", at, "pay-4") is None
    assert await stores.invoices.move_to_overdue(inv_id) is False  # paid is final

    doc = await stores.invoices.invoice(inv_id)
    assert doc is not None and doc["status"] == InvoiceStatus.paid
    assert [(h["status"], h["cause"]) for h in doc["history"]] == [
        ("pending_payment", "issued"), ("failed", "pay-1"), ("paid", "pay-3")]
    with pytest.raises(LookupError):
        await stores.invoices.change_status("acme:1999-01-01", "failed", at, "pay-5")


async def test_the_overdue_move_happens_once_at_the_overdue_instant(stores: Stores) -> None:
    await stores.issue("acme", JUNE)
    inv_id = invoice_id("acme", JUNE.start_date)
    doc = await stores.invoices.invoice(inv_id)
    assert doc is not None
    overdue_at = doc["overdue_at"]

    assert await stores.invoices.next_overdue_after(JUNE.end) == overdue_at
    assert await stores.invoices.overdue_candidates(overdue_at - timedelta(seconds=1)) == []
    assert [d["_id"] for d in await stores.invoices.overdue_candidates(overdue_at)] == [inv_id]
    assert await stores.invoices.move_to_overdue(inv_id) is True
    assert await stores.invoices.move_to_overdue(inv_id) is False

    doc = await stores.invoices.invoice(inv_id)
    assert doc is not None and doc["status"] == InvoiceStatus.overdue
    assert doc["history"][-1] == {"status": "overdue", "at": overdue_at, "cause": "clock"}
    assert await stores.invoices.overdue_candidates(overdue_at) == []
    assert await stores.invoices.next_overdue_after(JUNE.end) is None
    # a failed payment never moves it back; a success still pays it
    assert await stores.invoices.change_status(inv_id, "failed", overdue_at, "p1") is None
    assert await stores.invoices.change_status(inv_id, "succeeded", overdue_at, "p2") == "paid"


async def test_listing_filters_all_unpaid_and_paid(stores: Stores) -> None:
    for period in (JUNE, JULY, AUGUST):
        await stores.issue("acme", period)
    await stores.issue("globex", JUNE)
    at = datetime(2013, 8, 2, tzinfo=UTC)
    await stores.invoices.change_status(invoice_id("acme", JULY.start_date), "succeeded", at,
                                        "pay-1")

    def numbers(docs: list[dict[str, object]]) -> list[object]:
        return [d["invoice_number"] for d in docs]

    assert numbers(await stores.invoices.find_invoices()) == [
        "INV-2013-0001", "INV-2013-0002", "INV-2013-0003", "INV-2013-0004"]
    assert numbers(await stores.invoices.find_invoices(statuses=list(UNPAID))) == [
        "INV-2013-0001", "INV-2013-0003", "INV-2013-0004"]
    assert numbers(await stores.invoices.find_invoices(statuses=["paid"])) == ["INV-2013-0002"]
    assert numbers(await stores.invoices.find_invoices("acme", list(UNPAID))) == [
        "INV-2013-0001", "INV-2013-0003"]
    assert sorted(numbers(await stores.invoices.invoices_of("globex"))) == ["INV-2013-0004"]
    overlapping = await stores.invoices.invoices_overlapping("acme", JULY.start, SEPTEMBER.end)
    assert numbers(overlapping) == ["INV-2013-0002", "INV-2013-0003"]


async def test_billing_errors_are_recorded_and_resolved_by_the_issue(stores: Stores) -> None:
    assert await stores.invoices.record_billing_error(
        "acme", JUNE, LookupError("no price"), 2) == "missing_configuration"
    assert await stores.invoices.record_billing_error(
        "acme", JUNE, ValueError("again"), 1) == "unexpected"
    await stores.invoices.record_billing_error("globex", JUNE, ArithmeticError("big"), 0)

    errors = await stores.invoices.open_billing_errors()
    assert [(e["tenant_id"], e["reason"], e["attempts"], e["later_periods_waiting"])
            for e in errors] == [("acme", "unexpected", 2, 1), ("globex", "unpriceable", 1, 0)]
    assert errors[0]["_id"] == invoice_id("acme", JUNE.start_date)
    assert errors[0]["detail"] == "ValueError: again"
    assert await stores.invoices.count_open_billing_errors() == 2

    number = await stores.issue("acme", JUNE)
    assert number is not None
    assert [e["tenant_id"] for e in await stores.invoices.open_billing_errors()] == ["globex"]
    assert await stores.invoices.count_open_billing_errors() == 1


async def test_the_schedule_continues_after_the_last_invoice_and_marks_overdue_once(
    stores: Stores,
) -> None:
    as_of = datetime(2013, 8, 1, tzinfo=UTC)  # June and July have ended
    await stores.issue("acme", JUNE)

    due = [(p.start_date.isoformat(), t) for p, t in await due_periods(stores.both, as_of)]
    assert due == [("2013-06-01", "globex"), ("2013-07-01", "acme"), ("2013-07-01", "globex")]
    june = await stores.invoices.invoice(invoice_id("acme", JUNE.start_date))
    assert june is not None
    assert await next_due(stores.both, JUNE.end) == min(JULY.end, june["overdue_at"])
    assert await mark_overdue(stores.both, as_of) == [june["_id"]]
    assert await mark_overdue(stores.both, as_of) == []
