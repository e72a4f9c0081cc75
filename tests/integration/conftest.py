"""Fixtures of the integration tests: the Billing API in-process (`api`) and the invoicer
worker applying what it publishes (`invoicer`)."""

from collections.abc import AsyncIterator

import pytest

from services.api.settings import ApiSettings
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.settings import InvoicerSettings
from tests.integration.test_invoicer_support import open_store, worker_running, worker_settings
from tests.support.api import ApiHarness, api_harness


@pytest.fixture
async def api(billing_env: dict[str, str]) -> AsyncIterator[ApiHarness]:
    """The API on this test's broker and database (default settings from `billing_env`)."""
    async with api_harness(ApiSettings()) as harness:
        yield harness
        await harness.ctx.client.drop_database(harness.ctx.settings.mongo_db)


@pytest.fixture
async def dead_letter_api(billing_env: dict[str, str]) -> AsyncIterator[ApiHarness]:
    """The API with its dead-letter consumer (`billing_env` turns it off elsewhere)."""
    async with api_harness(ApiSettings(api_dead_letter_consumer=True)) as harness:
        yield harness
        await harness.ctx.client.drop_database(harness.ctx.settings.mongo_db)


@pytest.fixture
async def invoicer(billing_env: dict[str, str]) -> AsyncIterator[InvoicerStore]:
    """The invoicer worker (applies the commands the API and the portal publish) and a store
    to look at."""
    async with worker_running(worker_settings()), open_store(InvoicerSettings()) as store:
        yield store
