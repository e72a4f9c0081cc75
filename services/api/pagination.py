"""Cursor pagination for every list endpoint (docs/api.md, "Pagination").

A list answers `{"data": [...], "next_cursor": "..." | null}`; the client passes `?cursor=`
back for the next page and `?limit=` (1..200, default 50) for its size. The cursor is opaque to
clients: the sort key of the last item returned, base64url-encoded JSON. Keyset pagination
(`after_filter`) stays correct while items are added, unlike offsets.

    @router.get("/v1/things")
    async def things(ctx: Ctx, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
                     ) -> Page[Thing]:
        sort = [("created_at", -1), ("_id", -1)]
        query = {**after_filter(sort, decode_cursor(cursor))}
        docs = await coll.find(query).sort(sort).limit(limit + 1).to_list()
        return page([Thing(...) for d in docs], limit,
                    lambda t: [t.created_at, t.id])
"""

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from services.api.problems import Problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: Route parameter types: `limit: Limit = DEFAULT_LIMIT`, `cursor: Cursor = None`.
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (1..200).")]
Cursor = Annotated[str | None, Query(max_length=1000,
                                     description="`next_cursor` of the previous page.")]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list: the items and the cursor of the next page (null on the last)."""

    data: list[T]
    next_cursor: str | None = None


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    return value


#: Instants a cursor may hold: what the platform stores (BSON dates in this range).
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _decode_value(value: Any) -> Any:
    """A position value: a string, an integer or an aware instant in [1970, 9999); anything
    else raises ValueError (the cursor was not made by this API)."""
    if isinstance(value, dict) and set(value) == {"$dt"} and isinstance(value["$dt"], str):
        at = datetime.fromisoformat(value["$dt"])
        if at.tzinfo is None or not _EARLIEST <= at < _LATEST:
            raise ValueError("instant out of range")
        return at
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError("not a cursor value")


def encode_cursor(position: Sequence[Any]) -> str:
    """The opaque cursor for a sort-key position (JSON values and datetimes)."""
    raw = json.dumps([_encode_value(v) for v in position], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    """The position a cursor stands for (None for no cursor); `Problem(400)` for a cursor
    this API did not make."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list):
            raise ValueError("not a list")
        return [_decode_value(v) for v in values]
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise Problem(400, "Bad Request", "the cursor is not valid; pass a next_cursor "
                      "exactly as returned") from exc


def decode_time_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """The (time, id) position of a cursor of a newest-first list (audit, dead letters), None
    for no cursor; `Problem(400)` for a cursor of another list."""
    values = decode_cursor(cursor)
    if values is None:
        return None
    if len(values) != 2 or not isinstance(values[0], datetime) or not isinstance(values[1], str):
        raise Problem(400, "Bad Request", "the cursor does not belong to this list")
    return values[0], values[1]


def after_filter(sort: Sequence[tuple[str, int]], position: Sequence[Any] | None
                 ) -> dict[str, Any]:
    """A MongoDB filter for the documents after `position` in the order `sort`
    (`[(field, 1 | -1), ...]`, the last field unique); `{}` for the first page. Raises
    `Problem(400)` when the position does not fit the sort."""
    if position is None:
        return {}
    if len(position) != len(sort):
        raise Problem(400, "Bad Request", "the cursor does not belong to this list")
    branches = []
    for i, (field, direction) in enumerate(sort):
        branch = {f: position[j] for j, (f, _) in enumerate(sort[:i])}
        branch[field] = {"$gt" if direction > 0 else "$lt": position[i]}
        branches.append(branch)
    return {"$or": branches}


def page(items: Sequence[T], limit: int, position: Callable[[T], Sequence[Any]]) -> Page[T]:
    """The page of the first `limit` of `items` (fetch `limit + 1` so the presence of a next
    page is known); `position(item)` gives an item's sort key for the cursor."""
    more = len(items) > limit
    shown = list(items[:limit])
    cursor = encode_cursor(position(shown[-1])) if more and shown else None
    return Page(data=shown, next_cursor=cursor)
