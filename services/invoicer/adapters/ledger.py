"""Coupon redemption counts in MongoDB, as the issuing transaction reads and moves them
(docs/invoicing.md, "Coupon redemptions").

In `invoicer_coupon_redemptions`, one document per coupon code (`_id` = the code):
`redemptions` (how many tenants redeemed it, all tenants) and `tenants` (which). It is created
outside the transaction and only moved inside it, guarded by the count read there.
"""

from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.invoicer.ledger import LedgerMoved

COUPON_REDEMPTIONS = "invoicer_coupon_redemptions"
Doc = dict[str, Any]


async def ensure_coupon_count(db: AsyncDatabase[Doc], code: str) -> None:
    """Create the redemption count of `code` (0) outside any transaction; idempotent."""
    try:
        await db[COUPON_REDEMPTIONS].update_one(
            {"_id": code}, {"$setOnInsert": {"redemptions": 0, "tenants": []}}, upsert=True)
    except DuplicateKeyError:
        pass  # created concurrently


async def code_redemptions(db: AsyncDatabase[Doc], code: str, session: AsyncClientSession) -> int:
    """How many tenants redeemed `code`, read in `session`; `LedgerMoved` if not created."""
    doc = await db[COUPON_REDEMPTIONS].find_one({"_id": code}, session=session)
    if doc is None:
        raise LedgerMoved(f"the redemption count of coupon {code!r} is not created yet")
    return int(doc["redemptions"])


async def take_redemption(
    db: AsyncDatabase[Doc], code: str, tenant_ids: Sequence[str], seen: int,
    session: AsyncClientSession,
) -> None:
    """Count the redemptions of `code` by `tenant_ids` (one each, in issue order) in
    `session`, only if the count is still `seen`; otherwise `LedgerMoved` (so two tenants
    cannot both take the last redemption)."""
    result = await db[COUPON_REDEMPTIONS].update_one(
        {"_id": code, "redemptions": seen},
        {"$inc": {"redemptions": len(tenant_ids)},
         "$addToSet": {"tenants": {"$each": list(tenant_ids)}}}, session=session)
    if result.modified_count != 1:
        raise LedgerMoved(f"coupon {code!r} was redeemed meanwhile")
