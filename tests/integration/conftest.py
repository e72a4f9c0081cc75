"""Fixtures of the integration tests: the Billing API in-process (`api`)."""

from collections.abc import AsyncIterator

import pytest

from services.api.settings import ApiSettings
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
