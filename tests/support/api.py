"""The Billing API in-process for tests: `api_harness(settings)` runs `create_app`'s lifespan
against the test's broker and database and gives an `httpx.AsyncClient` on it.

    async with api_harness(ApiSettings()) as api:
        token = await api.key("tenant", tenant_id="acme")
        response = await api.client.get("/v1/invoices", headers=api.auth(token))
"""

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import APIRouter, FastAPI

from services.api.app import create_app
from services.api.context import ApiContext
from services.api.keys import create_key
from services.api.settings import ApiSettings
from tests.support.servers import Servers

BASE_URL = "http://api.test"


@dataclass
class ApiHarness:
    """A running app: `.client` talks to it, `.ctx` is its context (settings, db, broker)."""

    app: FastAPI
    client: httpx.AsyncClient
    ctx: ApiContext

    async def key(self, role: str, tenant_id: str | None = None,
                  source: str | None = None, name: str | None = None) -> str:
        """A fresh key's bearer token for `role` (a tenant key needs `tenant_id`)."""
        return await create_key(self.ctx.db, role=role, name=name or f"test {role}",
                                tenant_id=tenant_id, source=source)

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        """The `Authorization` header for `token`."""
        return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def api_harness(settings: ApiSettings | None = None,
                      routers: Sequence[APIRouter] = ()) -> AsyncIterator[ApiHarness]:
    """Run the app (lifespan included) for the duration of the block; `routers` adds routes
    only a test needs (behind the same middleware)."""
    app = create_app(settings or ApiSettings())
    for router in routers:
        app.include_router(router)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield ApiHarness(app, client, app.state.context)


def module_settings(servers: Servers) -> ApiSettings:
    """Settings with their own database, topics and signing key, and rate limits no test
    reaches: for a module-scoped API shared by the module's tests."""
    tag = uuid.uuid4().hex[:10]
    return ApiSettings(
        kafka_bootstrap_servers=servers.kafka_bootstrap_servers, mongo_uri=servers.mongo_uri,
        mongo_db=f"test_{tag}", topic_prefix=f"t{tag}.",
        command_signing_key=f"test-command-signing-key-{uuid.uuid4().hex}",
        api_rate_limit="100000/minute", api_ingest_rate_limit="100000/minute",
    )
