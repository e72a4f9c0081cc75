"""One suite for the invoicer's `TenantLedger`, run against every implementation: in memory and
MongoDB (`InvoicerStore`, this test's database). What the use cases rely on: versions read back
by number as recorded, the current one in the tenant document, the version in force at an
instant, and a new tenant's empty ledger."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from services.common.settings import CommonSettings
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.adapters.tenant_ledger import InMemoryTenantLedger, TenantLedger, ledger_of
from tests.integration.test_invoicer_support import config
from tests.support.mongo import service_database

NOW = datetime(2013, 6, 1, tzinfo=UTC)


@pytest.fixture(params=[pytest.param("memory", marks=pytest.mark.unit),
                        pytest.param("mongo", marks=pytest.mark.integration)])
async def ledger(request: pytest.FixtureRequest) -> AsyncIterator[TenantLedger]:
    """Each test runs once per implementation, without tenants."""
    if request.param == "memory":
        yield InMemoryTenantLedger()
        return
    settings: CommonSettings = request.getfixturevalue("common_settings")  # own database
    async with service_database(settings) as (client, db):
        store = InvoicerStore(client, db)
        await store.ensure_indexes()
        yield store


async def add(ledger: TenantLedger, command: object, version: int) -> None:
    """Record a version as the configuration handler does: in a transaction on MongoDB."""
    if isinstance(ledger, InvoicerStore):
        await ledger.transaction(
            lambda s: ledger.add_config_version(command, version, NOW, s))  # type: ignore[arg-type]
    else:
        await ledger.add_config_version(command, version, NOW, None)  # type: ignore[arg-type]


async def test_a_new_tenant_has_its_first_version_and_an_empty_ledger(
    ledger: TenantLedger,
) -> None:
    assert await ledger.tenant("acme") is None
    assert await ledger_of(ledger, "acme") is None
    await add(ledger, config("acme"), 1)

    tenant = await ledger.tenant("acme")
    assert tenant is not None and tenant["version"] == 1
    assert tenant["config"]["settings"]["billing_email"] == "billing@acme.example"
    state = await ledger_of(ledger, "acme")
    assert state is not None
    assert (state.rev, state.coupon_uses, state.credits_used, state.balance) == (0, {}, {}, [])
    assert [t["_id"] for t in await ledger.all_tenants()] == ["acme"]


async def test_versions_read_back_by_number_and_the_latest_is_current(
    ledger: TenantLedger,
) -> None:
    first = config("acme")
    second = config("acme", effective_from="2013-09-01",
                    settings={"billing_email": "second@acme.example"})
    await add(ledger, config("globex"), 1)
    await add(ledger, first, 1)
    await add(ledger, second, 2)

    versions = await ledger.config_versions("acme")
    assert [(v.number, v.command.event_id) for v in versions] == [
        (1, first.event_id), (2, second.event_id)]
    tenant = await ledger.tenant("acme")
    assert tenant is not None and tenant["version"] == 2
    assert tenant["config"]["settings"]["billing_email"] == "second@acme.example"
    assert [t["_id"] for t in await ledger.all_tenants()] == ["acme", "globex"]


async def test_the_version_in_force_at_an_instant_is_the_one_that_prices_it(
    ledger: TenantLedger,
) -> None:
    assert await ledger.config_in_force("acme", NOW) is None
    # a version is in force from its submission on (docs/billing-periods.md)
    await add(ledger, config("acme", occurred_at="2013-05-20T00:00:00Z"), 1)
    await add(ledger, config("acme", occurred_at="2013-09-01T00:00:00Z"), 2)

    july = await ledger.config_in_force("acme", datetime(2013, 7, 1, tzinfo=UTC))
    october = await ledger.config_in_force("acme", datetime(2013, 10, 1, tzinfo=UTC))
    assert july is not None and july.number == 1
    assert october is not None and october.number == 2
