"""Subscriptions in MongoDB (docs/plans.md, "Subscriptions").

    invoicer_subscriptions  one document per tenant, `_id` = the tenant id
"""

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.invoicer.subscriptions import SubscriptionView

SUBSCRIPTIONS = "invoicer_subscriptions"
Doc = dict[str, Any]


async def subscription_of(db: AsyncDatabase[Doc], tenant_id: str) -> SubscriptionView | None:
    """The tenant's subscription (active, or the last one that ended), or None for a tenant
    that never subscribed."""
    return None
