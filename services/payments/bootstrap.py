"""Where the payments service's dependencies are built: the MongoDB store and the Stripe
gateway (the outbox relay comes from `services.common.relay`). The worker (`app.py`) and the
one-off operations (`api.py`) both build them here, so neither imports the other."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo import AsyncMongoClient

from services.common.mongo import database, make_client
from services.payments.adapters.mongo_store import MongoPaymentsStore
from services.payments.adapters.stripe_gateway import PaymentGateway, StripeGateway
from services.payments.charging import Deps
from services.payments.settings import PaymentsSettings


def mongo_store(client: AsyncMongoClient[dict[str, Any]],
                settings: PaymentsSettings) -> MongoPaymentsStore:
    """The store in the configured database, on `client` (the caller closes it)."""
    return MongoPaymentsStore(client, database(client, settings))


@asynccontextmanager
async def open_store(settings: PaymentsSettings) -> AsyncIterator[MongoPaymentsStore]:
    """The MongoDB store on its own connection, closed after."""
    client = make_client(settings)
    try:
        yield mongo_store(client, settings)
    finally:
        await client.close()


@asynccontextmanager
async def connected_deps(settings: PaymentsSettings,
                         client: AsyncMongoClient[dict[str, Any]]) -> AsyncIterator[Deps]:
    """Deps on the caller's open `client` for a long-lived process: the store (the caller
    ensures its indexes once, e.g. on first use) and one Stripe gateway, closed after; the
    client stays the caller's."""
    gateway = StripeGateway(settings)
    try:
        yield Deps(settings, mongo_store(client, settings), gateway)
    finally:
        await gateway.close()


@asynccontextmanager
async def open_deps(settings: PaymentsSettings,
                    gateway: PaymentGateway | None = None) -> AsyncIterator[Deps]:
    """Deps for one-off commands (CLI, demo, tests): the MongoDB store (indexes ensured) and
    the Stripe gateway (`gateway` when given), closed after."""
    gw = gateway or StripeGateway(settings)
    try:
        async with open_store(settings) as store:
            await store.ensure_indexes()
            yield Deps(settings, store, gw)
    finally:
        await gw.close()
