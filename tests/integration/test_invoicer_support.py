"""Helpers the invoicer's integration tests share (no tests here): configuration commands,
usage written through the collector's api, and a store on its own client."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts import BillingConfigSubmitted
from contracts.base import utc_now
from services.common.kafka import ensure_topics
from services.common.mongo import database, make_client
from services.common.settings import CommonSettings
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.app import serve
from services.invoicer.settings import InvoicerSettings
from services.usage_collector.api import record_usage

pytestmark = pytest.mark.integration


def config(tenant_id: str, **overrides: Any) -> BillingConfigSubmitted:
    """A valid monthly USD configuration (flat 10.00, cpu_hours at 0.50), overridable."""
    settings = {
        "flat_rate_amount": 1000, "currency": "USD", "billing_frequency": "monthly",
        "billing_email": f"billing@{tenant_id}.example", "auto_generate_invoices": True,
        "billing_day_of_month": 1, "payment_due_days": 14, "email_notifications": True,
        **overrides.pop("settings", {}),
    }
    body: dict[str, Any] = {
        "tenant_id": tenant_id, "tenant_name": tenant_id.title(),
        "actor": {"user_id": "ops-admin", "role": "super"}, "settings": settings,
        "timezone": "UTC", "effective_from": "2013-06-01",
        "price_plan": {"charges": [{"meter": "cpu_hours", "model": "per_unit",
                                    "unit_price": "0.50"}]},
        **overrides,
    }
    return BillingConfigSubmitted.model_validate(body)


async def add_usage(
    db: Any, tenant_id: str, meter: str, service: str, hour: datetime, quantity: str
) -> None:
    """Add `quantity` of a `sum` meter at the start of `hour`, as the usage collector would."""
    await collect_usage(db, tenant_id, meter, service, hour, quantity)


@asynccontextmanager
async def open_store(settings: CommonSettings) -> AsyncIterator[InvoicerStore]:
    """An `InvoicerStore` with its indexes, on its own client."""
    client = make_client(settings)
    store = InvoicerStore(client, database(client, settings))
    await store.ensure_indexes()
    try:
        yield store
    finally:
        await client.close()


def utc(*parts: int) -> datetime:
    """A UTC instant."""
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


async def collect_usage(
    db: Any, tenant_id: str, meter: str, service: str, at: datetime, quantity: str,
    clock: Callable[[], datetime] = utc_now,
) -> None:
    """One usage event (a CloudEvent, unique id) decoded and committed by the usage collector's
    own code and store (through its api), so its bucket carries the tenant's usage sequence
    marker; `clock` is the collector host's clock."""
    await record_usage(db, [json.dumps({
        "specversion": "1.0", "id": uuid.uuid4().hex, "source": "test", "type": "billing.usage",
        "subject": tenant_id, "time": at.isoformat(),
        "data": {"meter": meter, "quantity": quantity, "service": service},
    }).encode()], clock=clock)


def worker_settings() -> InvoicerSettings:
    """The invoicer's settings for tests with its worker: no periodic cycle, fast retries."""
    return InvoicerSettings(invoicer_cycle_interval_seconds=0, retry_base_seconds=0.05)


@asynccontextmanager
async def worker_running(settings: InvoicerSettings) -> AsyncIterator[None]:
    """The invoicer worker (`serve`) running for the block, stopped (within 60 s) after it."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(stop, settings))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


@pytest.fixture(name="settings")
async def worker_settings_fixture(billing_env: dict[str, str]) -> InvoicerSettings:
    """`settings`: `worker_settings()` with the platform's topics created."""
    settings = worker_settings()
    await ensure_topics(settings)
    return settings


@pytest.fixture(name="worker")
async def worker_fixture(settings: InvoicerSettings) -> AsyncIterator[None]:
    """`worker`: the invoicer worker running on `settings` for the test."""
    async with worker_running(settings):
        yield

