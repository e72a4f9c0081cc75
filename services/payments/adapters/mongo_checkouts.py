"""Subscription checkouts in MongoDB (`payments_subscription_checkouts`, `_id` the Checkout
Session id), mixed into `MongoPaymentsStore`; their status changes in its `commit`."""

import dataclasses
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.common.mongo_errors import unavailable_as_retryable
from services.payments.adapters.store import SubscriptionCheckout

CHECKOUTS = "payments_subscription_checkouts"


def _checkout(doc: dict[str, Any]) -> SubscriptionCheckout:
    values = {k: v for k, v in doc.items() if k != "_id"}
    return SubscriptionCheckout(session_id=doc["_id"], **values)


@unavailable_as_retryable
class MongoSubscriptionCheckouts:
    """The subscription checkout methods of `MongoPaymentsStore` (it provides `db`)."""

    db: AsyncDatabase[dict[str, Any]]

    async def add_subscription_checkout(self, checkout: SubscriptionCheckout) -> None:
        """Record a subscription checkout just opened."""
        doc = dataclasses.asdict(checkout)
        doc["_id"] = doc.pop("session_id")
        await self.db[CHECKOUTS].replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def subscription_checkout(self, session_id: str) -> SubscriptionCheckout | None:
        """The subscription checkout of `session_id`, if any."""
        doc = await self.db[CHECKOUTS].find_one({"_id": session_id})
        return _checkout(doc) if doc else None

    async def open_subscription_checkout(self, tenant_id: str,
                                         at: datetime) -> SubscriptionCheckout | None:
        """The tenant's newest open, unexpired subscription checkout."""
        doc = await self.db[CHECKOUTS].find_one(
            {"tenant_id": tenant_id, "status": "open", "expires_at": {"$gt": at}},
            sort=[("opened_at", -1)])
        return _checkout(doc) if doc else None
