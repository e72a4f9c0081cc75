"""Idempotent consumption: processed event ids under a unique key, recorded in the same
MongoDB transaction as the state change they caused (eventsourcing's `Tracking` records).

A duplicate-key error on `processed_events` means "already done": acknowledge and move on.
The rule: docs/design.md#reliability.
"""

from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from contracts.base import utc_now

PROCESSED_EVENTS = "processed_events"


def tracking_id(consumer: str, event_id: str) -> str:
    """The `_id` of a processed-event record: one per (consumer, event id)."""
    return f"{consumer}:{event_id}"


async def already_processed(
    db: AsyncDatabase[dict[str, Any]],
    consumer: str,
    event_id: str,
    session: AsyncClientSession | None = None,
) -> bool:
    """True when `consumer` has already recorded `event_id`."""
    doc = await db[PROCESSED_EVENTS].find_one(
        {"_id": tracking_id(consumer, event_id)}, session=session
    )
    return doc is not None


async def record_processed(
    db: AsyncDatabase[dict[str, Any]],
    consumer: str,
    event_id: str,
    session: AsyncClientSession | None,
    at: datetime | None = None,
) -> bool:
    """Record `event_id` as processed by `consumer`; False if it already was.

    Inside a transaction a duplicate aborts the transaction: callers check
    `already_processed` first and treat a `DuplicateKeyError` from the commit as "done".
    """
    try:
        await db[PROCESSED_EVENTS].insert_one(
            {"_id": tracking_id(consumer, event_id), "at": at or utc_now()}, session=session
        )
    except DuplicateKeyError:
        return False
    return True
