"""`Idempotency-Key` on POST and PUT requests, with Stripe's semantics (docs/api.md,
"Idempotency"); collection `api_idempotency`.

A key is scoped to the API key that sent it. The first request with a key claims it (a
document with a unique id) and runs; its response (status, body, content type) is saved and
replayed, with `Idempotent-Replayed: true`, to every later request with the same key and the
same fingerprint (SHA-256 of method, path, query and body) for `api_idempotency_ttl_seconds`.
The same key with another request -> 409; while the first is still running -> 409. A 5xx
answer, an exception, or an answer given before the endpoint ran (401, 403, 413, 422, 429) is
not saved: the claim is released and the key can be used again.
A claim whose request never finished (the instance died) can be taken over after
`LEASE_SECONDS`. Keys over 255 characters -> 400. Requests that do not authenticate pass
through untouched (they get their 401 from the route).

Saved responses expire through a TTL index on `created_at`; since MongoDB deletes lazily
(about once a minute), the age is also checked on read.
"""

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.auth import Authenticator, bearer_token
from services.api.context import context_of
from services.api.errors import problem_response
from services.api.problems import Problem
from services.api.scope import buffered_body
from services.api.settings import ApiSettings

COLLECTION = "api_idempotency"
HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
LEASE_SECONDS = 60
METHODS = frozenset({"POST", "PUT"})
#: Answers given before the endpoint ran (not authorised, invalid, over a limit): like 5xx,
#: they release the key, so the corrected request can use it.
NOT_SAVED = frozenset({401, 403, 413, 422, 429})
_KEPT_HEADERS = (b"content-type", b"location")
_INDEX_CONFLICTS = (85, 86)  # IndexOptionsConflict, IndexKeySpecsConflict


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]], settings: ApiSettings) -> None:
    """The TTL index expiring saved responses after `api_idempotency_ttl_seconds` (changed in
    place when the setting changed since the index was made)."""
    ttl = settings.api_idempotency_ttl_seconds
    try:
        await db[COLLECTION].create_index("created_at", expireAfterSeconds=ttl)
    except OperationFailure as exc:
        if exc.code not in _INDEX_CONFLICTS:
            raise
        await db.command("collMod", COLLECTION,
                         index={"keyPattern": {"created_at": 1}, "expireAfterSeconds": ttl})


def fingerprint(scope: Scope, body: bytes) -> str:
    """SHA-256 (hex) of the request's method, path, query string and body."""
    digest = hashlib.sha256()
    for part in (scope["method"].encode(), scope["path"].encode(),
                 scope.get("query_string", b""), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _conflict(detail: str) -> Problem:
    return Problem(409, "Conflict", detail)


class Idempotency:
    """The middleware (see module docstring); runs inside `BodyLimit`, whose buffered body it
    fingerprints."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in METHODS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        key = request.headers.get(HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        if not key or len(key) > MAX_KEY_LENGTH:
            bad = Problem(400, "Bad Request",
                          f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
            await problem_response(bad, scope["path"])(scope, receive, send)
            return
        token = bearer_token(request)
        authenticator: Authenticator = request.app.state.authenticator
        principal = await authenticator.principal(token) if token else None
        if principal is None:
            await self.app(scope, receive, send)
            return
        ctx = context_of(request)
        store = _Claims(ctx.db[COLLECTION], ctx.settings.api_idempotency_ttl_seconds)
        doc_id = f"{principal.key_id}:{hashlib.sha256(key.encode()).hexdigest()}"
        saved = await store.claim(doc_id, fingerprint(scope, buffered_body(scope)))
        if saved is not None:
            await _replay(saved, scope, receive, send)
            return
        await self._run_and_save(store, doc_id, scope, receive, send)

    async def _run_and_save(self, store: "_Claims", doc_id: str, scope: Scope,
                            receive: Receive, send: Send) -> None:
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            await store.release(doc_id)
            raise
        status = int(start.get("status", 500))
        if status >= 500 or status in NOT_SAVED:
            await store.release(doc_id)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1")
                   for k, v in start.get("headers", []) if k.lower() in _KEPT_HEADERS}
        await store.save(doc_id, status, headers, b"".join(chunks))


async def _replay(saved: dict[str, Any], scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1"))
               for k, v in (saved.get("headers") or {}).items()]
    headers.append((REPLAYED_HEADER.lower().encode(), b"true"))
    body = bytes(saved.get("body") or b"")
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": int(saved["status"]),
                "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Claims:
    """The claim documents: `{_id, fingerprint, state: in_flight|done, created_at,
    locked_until, status, headers, body}`."""

    def __init__(self, coll: AsyncCollection[dict[str, Any]], ttl_seconds: int) -> None:
        self.coll = coll
        self.ttl = timedelta(seconds=ttl_seconds)

    async def claim(self, doc_id: str, fp: str) -> dict[str, Any] | None:
        """Claim `doc_id` for this request: None when claimed (run it), the saved response
        to replay, or `Problem(409)`."""
        for _ in range(3):
            now = datetime.now(UTC)
            try:
                await self.coll.insert_one({
                    "_id": doc_id, "fingerprint": fp, "state": "in_flight", "created_at": now,
                    "locked_until": now + timedelta(seconds=LEASE_SECONDS)})
                return None
            except DuplicateKeyError:
                doc = await self.coll.find_one({"_id": doc_id})
            if doc is None:
                continue  # released meanwhile: try again
            if doc["created_at"] + self.ttl <= now:
                await self.coll.delete_one({"_id": doc_id, "created_at": doc["created_at"]})
                continue  # expired, not yet removed by the TTL monitor
            if doc["fingerprint"] != fp:
                raise _conflict("this Idempotency-Key was used with a different request")
            if doc["state"] == "done":
                return doc
            if doc["locked_until"] > now:
                raise _conflict("a request with this Idempotency-Key is still in progress")
            taken = await self.coll.find_one_and_update(
                {"_id": doc_id, "state": "in_flight", "locked_until": doc["locked_until"]},
                {"$set": {"locked_until": now + timedelta(seconds=LEASE_SECONDS)}})
            if taken is not None:
                return None  # an abandoned claim (its instance died): run it again
        raise _conflict("a request with this Idempotency-Key is still in progress")

    async def save(self, doc_id: str, status: int, headers: dict[str, str], body: bytes) -> None:
        await self.coll.update_one({"_id": doc_id}, {"$set": {
            "state": "done", "status": status, "headers": headers, "body": body}})

    async def release(self, doc_id: str) -> None:
        await self.coll.delete_one({"_id": doc_id, "state": "in_flight"})
