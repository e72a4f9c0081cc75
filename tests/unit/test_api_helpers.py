"""Pure helpers of the API: rate-limit budgets and cursors."""

from datetime import UTC, datetime

import pytest

from services.api.pagination import after_filter, decode_cursor, encode_cursor, page
from services.api.principal import Principal
from services.api.problems import Problem
from services.api.ratelimit import RateLimits

pytestmark = pytest.mark.unit
KEY = Principal("key_00000000000000aa", "n", "ingest")


async def test_ingest_requests_have_their_own_budget_and_429_says_when_to_retry() -> None:
    limits = RateLimits("1/minute", "2/minute")
    await limits.hit(KEY)
    await limits.hit(KEY, ingest=True)
    await limits.hit(KEY, ingest=True)
    for ingest in (False, True):
        with pytest.raises(Problem) as over:
            await limits.hit(KEY, ingest=ingest)
        assert over.value.status == 429
        assert 1 <= int(over.value.headers["Retry-After"]) <= 60
    await limits.hit(Principal("key_00000000000000bb", "m", "ingest"))


def test_a_cursor_round_trips_its_position_including_datetimes() -> None:
    position = [datetime(2013, 7, 1, 12, tzinfo=UTC), "INV-2013-0001", 3]
    assert decode_cursor(encode_cursor(position)) == position
    assert decode_cursor(None) is None


@pytest.mark.parametrize("cursor", ["!!", "bm90IGpzb24", "eyJhIjoxfQ"])
def test_a_cursor_the_api_did_not_make_is_a_400(cursor: str) -> None:
    with pytest.raises(Problem) as bad:
        decode_cursor(cursor)
    assert bad.value.status == 400


def test_the_filter_after_a_position_follows_the_sort_directions() -> None:
    sort = [("at", -1), ("_id", 1)]
    assert after_filter(sort, None) == {}
    assert after_filter(sort, [5, "b"]) == {"$or": [{"at": {"$lt": 5}},
                                                     {"at": 5, "_id": {"$gt": "b"}}]}
    with pytest.raises(Problem):
        after_filter(sort, [5])


def test_a_page_has_a_cursor_only_when_more_items_follow() -> None:
    assert page([1, 2, 3], 2, lambda i: [i]).next_cursor == encode_cursor([2])
    last = page([1, 2], 2, lambda i: [i])
    assert (last.data, last.next_cursor) == ([1, 2], None)
