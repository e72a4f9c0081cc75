"""Stripe's list responses: `{"object": "list", "data": [...], "has_more": bool, "url": ...}`,
newest first, paged with `limit` (1 to 100, default 10), `starting_after` and `ending_before`
(object ids). Source: https://docs.stripe.com/api/pagination; docs/stripe-fake.md, "Lists"."""

from typing import Any

from services.devstack.stripe_fake.errors import invalid

Body = dict[str, Any]


def page(newest_first: list[Body], query: dict[str, str], url: str) -> Body:
    """One page of `newest_first` as Stripe's list object; an unknown cursor or a bad `limit`
    is a 400 `invalid_request_error`, as at Stripe."""
    try:
        limit = int(query.get("limit", 10))
    except ValueError:
        raise invalid("Invalid integer: limit.", "limit") from None
    if not 1 <= limit <= 100:
        raise invalid("This value must be between 1 and 100.", "limit")
    found = newest_first
    ids = [obj["id"] for obj in found]
    if query.get("starting_after"):
        cursor = query["starting_after"]
        if cursor not in ids:
            raise invalid(f"No such object: '{cursor}'", "starting_after")
        found = found[ids.index(cursor) + 1:]
        data = found[:limit]
        more = len(found) > limit
    elif query.get("ending_before"):
        cursor = query["ending_before"]
        if cursor not in ids:
            raise invalid(f"No such object: '{cursor}'", "ending_before")
        found = found[:ids.index(cursor)]
        data = found[-limit:]
        more = len(found) > limit
    else:
        data = found[:limit]
        more = len(found) > limit
    return {"object": "list", "data": data, "has_more": more, "url": url}
