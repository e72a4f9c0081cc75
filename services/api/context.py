"""What every request handler shares within one API process: settings, the MongoDB database and
the started Kafka broker (created by the app's lifespan; `context_of` reads it)."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.api.settings import ApiSettings


@dataclass
class ApiContext:
    """One API process's connections: `db` has the platform's Decimal codec and tz-aware
    datetimes (`services.common.mongo.database`); `broker` is started and publishes with acks
    from every in-sync replica."""

    settings: ApiSettings
    client: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    broker: KafkaBroker


def context_of(request: Request) -> ApiContext:
    """The `ApiContext` of the app serving `request` (set by its lifespan)."""
    ctx: ApiContext = request.app.state.context
    return ctx


#: Route parameter type: `ctx: Ctx`.
Ctx = Annotated[ApiContext, Depends(context_of)]
