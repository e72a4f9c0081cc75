"""The per-tenant, per-day count of usage events the API accepted (`api_ingest_counts`): what
the dashboard's usage reconciliation reads through `accepted_by_api`."""

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from services.api.ingest_counts import COLLECTION, accepted_by_api, add_accepted

pytestmark = pytest.mark.integration


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2013, 9, day, hour, tzinfo=UTC)


async def test_counts_add_up_per_tenant_and_utc_day(mongo_db: Any) -> None:
    await add_accepted(mongo_db, [("acme", at(1)), ("acme", at(1, 23)), ("beta", at(2))])
    await add_accepted(mongo_db, [("acme", at(1, 0))])
    docs = await mongo_db[COLLECTION].find({}, sort=[("_id", 1)]).to_list()
    assert docs == [
        {"_id": "acme|2013-09-01", "tenant_id": "acme", "day": "2013-09-01", "events": 3},
        {"_id": "beta|2013-09-02", "tenant_id": "beta", "day": "2013-09-02", "events": 1},
    ]


async def test_the_day_is_the_utc_day_of_the_event_time(mongo_db: Any) -> None:
    late_evening_in_new_york = datetime(2013, 9, 1, 22, tzinfo=timezone(timedelta(hours=-4)))
    await add_accepted(mongo_db, [("acme", late_evening_in_new_york)])
    assert await mongo_db[COLLECTION].find_one({"_id": "acme|2013-09-02"})


async def test_accepted_by_api_sums_the_days_overlapping_the_range(mongo_db: Any) -> None:
    await add_accepted(mongo_db, [("acme", at(d)) for d in (1, 2, 3, 4)] + [("beta", at(3))])
    assert await accepted_by_api(mongo_db, ["acme", "beta", "gamma"], at(2, 0), at(4, 0)) == {
        "acme": 2, "beta": 1, "gamma": 0}
    # an end inside a day takes that whole day; dates are UTC midnights
    assert await accepted_by_api(mongo_db, ["acme"], at(2, 5), at(4, 1)) == {"acme": 3}
    assert await accepted_by_api(mongo_db, ["acme"], date(2013, 9, 1), date(2013, 9, 2)) == {
        "acme": 1}
    assert await accepted_by_api(mongo_db, [], at(1), at(4)) == {}


async def test_nothing_to_count_writes_nothing(mongo_db: Any) -> None:
    await add_accepted(mongo_db, [])
    assert await mongo_db[COLLECTION].count_documents({}) == 0
