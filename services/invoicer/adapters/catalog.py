"""The coupon catalog and the operator's ledger writes in MongoDB, each inside the caller's
transaction (docs/configuration.md, "Credits and coupons").

    invoicer_coupons   one document per catalog coupon (`_id` = the code): `amount_off`,
                       `currency`, `duration`, `duration_in_periods`, `max_redemptions`,
                       `created_at`, `created_by`, `event_id`, `redemptions` (how many distinct
                       tenants redeemed it) and `redeemed_by` (which, in redemption order)

On the tenant document (`invoicer_tenants`), a granted credit is appended to `credit_balance`
and a redemption sets `redeemed_coupon`; both bump `ledger_rev`, so an issuing transaction
that read the ledger before them aborts and prices again (its update is guarded by the
revision it read).
"""

from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from contracts import CouponCreated, CouponRedeemed, CreditGranted

COUPONS = "invoicer_coupons"
TENANTS = "invoicer_tenants"
Doc = dict[str, Any]
#: The fields of a catalog coupon that two creations of one code must agree on.
COUPON_FIELDS = ("amount_off", "currency", "duration", "duration_in_periods", "max_redemptions")


def coupon_fields(command: CouponCreated) -> Doc:
    """The defining fields of the coupon `command` creates (minor units, ISO currency)."""
    return {name: getattr(command, name) for name in COUPON_FIELDS}


async def catalog_coupon(
    db: AsyncDatabase[Doc], code: str, session: AsyncClientSession | None = None
) -> Doc | None:
    """The catalog document of `code` (read in `session`), or None."""
    return await db[COUPONS].find_one({"_id": code}, session=session)


async def insert_coupon(
    db: AsyncDatabase[Doc], command: CouponCreated, now: datetime, session: AsyncClientSession
) -> None:
    """Add the coupon `command` creates to the catalog, with no redemption yet."""
    await db[COUPONS].insert_one(
        {"_id": command.code, **coupon_fields(command), "created_at": now,
         "created_by": command.actor.user_id, "event_id": command.event_id,
         "redemptions": 0, "redeemed_by": []},
        session=session)


async def add_credit(
    db: AsyncDatabase[Doc], command: CreditGranted, session: AsyncClientSession
) -> None:
    """Append the credit of `command` to its tenant's `credit_balance` (granted at the
    command's `occurred_at`) and bump `ledger_rev`."""
    entry = {"credit_id": command.credit_id, "amount": command.amount,
             "granted_at": command.occurred_at, "reason": command.reason,
             "currency": command.currency, "granted_by": command.actor.user_id,
             "event_id": command.event_id}
    await db[TENANTS].update_one(
        {"_id": command.tenant_id},
        {"$push": {"credit_balance": entry}, "$inc": {"ledger_rev": 1}}, session=session)


async def record_redemption(
    db: AsyncDatabase[Doc], command: CouponRedeemed, coupon: Doc, count: bool,
    session: AsyncClientSession,
) -> None:
    """Make catalog `coupon` the tenant's redeemed coupon from the command's `occurred_at`
    (bumping `ledger_rev`) and, when `count`, add the tenant to the coupon's redemptions."""
    redeemed = {"code": coupon["_id"], "amount_off": coupon["amount_off"],
                "duration": coupon["duration"],
                "duration_in_periods": coupon.get("duration_in_periods"),
                "max_redemptions": coupon.get("max_redemptions"),
                "currency": coupon["currency"], "redeemed_at": command.occurred_at,
                "event_id": command.event_id}
    await db[TENANTS].update_one(
        {"_id": command.tenant_id},
        {"$set": {"redeemed_coupon": redeemed}, "$inc": {"ledger_rev": 1}}, session=session)
    if count:
        await db[COUPONS].update_one(
            {"_id": coupon["_id"]},
            {"$inc": {"redemptions": 1}, "$push": {"redeemed_by": command.tenant_id}},
            session=session)
