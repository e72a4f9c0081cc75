"""What every request handler shares within one API process: settings, the MongoDB database and
the started Kafka broker, and the payments service's connections on the same client (its
store and one Stripe gateway) for paying and manual payments (created by the app's lifespan;
`context_of` reads it)."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.api.settings import ApiSettings
from services.payments import api as payments_api
from services.payments.api import PaymentsDeps


@dataclass
class ApiContext:
    """One API process's connections: `db` has the platform's Decimal codec and tz-aware
    datetimes (`services.common.mongo.database`); `broker` is started and publishes with acks
    from every in-sync replica."""

    settings: ApiSettings
    client: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    broker: KafkaBroker
    payments: PaymentsDeps
    _payments_indexed: bool = False

    async def payments_deps(self) -> PaymentsDeps:
        """The payments connections for an operation, the payments store's indexes ensured
        on first use (once per process, not at every API start)."""
        if not self._payments_indexed:
            await payments_api.ensure_indexes(self.payments)
            self._payments_indexed = True
        return self.payments


def context_of(request: Request) -> ApiContext:
    """The `ApiContext` of the app serving `request` (set by its lifespan)."""
    ctx: ApiContext = request.app.state.context
    return ctx


#: Route parameter type: `ctx: Ctx`.
Ctx = Annotated[ApiContext, Depends(context_of)]
