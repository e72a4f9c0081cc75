"""Portal sign-in: single-use portal links, server-side sessions and their signed cookies
(docs/portal.md, "Signing in").

- A **portal link** (`create_link`) opens a tenant session once, within `portal_link_minutes`
  (1 h), like a Stripe billing portal session. Only the SHA-256 of the link's random token is
  stored (`portal_links`); `open_link` marks it used atomically, so a second opening fails.
  Following the link shows a page asking to open the portal (a GET never signs anyone in:
  mail scanners do not use links up, and nobody is signed in to someone else's account by a
  link planted in a page); its button opens the session. A link made by a `viewer` key opens
  a read-only session (no payment, no card change); the session names who made the link.
- An **operator** signs in with an API key (`super` or `viewer`; a `tenant` key opens a
  session of its tenant); the session remembers the key id and stops working as soon as the
  key is revoked.
- A **session** (`portal_sessions`, expiring after `portal_session_minutes`) holds the role,
  tenant and a CSRF token. The browser holds only its id, signed with the portal secret
  (itsdangerous), in an HttpOnly, SameSite=Lax cookie scoped to `/portal`.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, Signer
from pymongo.asynchronous.database import AsyncDatabase

from contracts.base import utc_now
from services.api.keys import MongoKeyStore, verify_token
from services.api.principal import Principal, Role
from services.api.settings import ApiSettings

SESSIONS = "portal_sessions"
LINKS = "portal_links"
COOKIE = "billing_portal"
COOKIE_PATH = "/portal"
LINK_PATH = "/portal/link/"
_SALT = "billing-portal-session"
Db = AsyncDatabase[dict[str, Any]]


@dataclass(frozen=True)
class PortalLink:
    """A portal link: `url` (opens a session for `tenant_id` once) until `expires_at`."""

    url: str
    tenant_id: str
    expires_at: datetime


@dataclass(frozen=True)
class PortalSession:
    """A signed-in browser: `kind` `tenant` (opened by a portal link or a tenant key) or
    `operator` (an API key of role `super` or `viewer`). `key_id` is the API key's id for a
    key sign-in, else None; `csrf` the token every form of the session carries; `has_flash`
    whether a one-time message waits (read with the session, so pages without one make no
    second read)."""

    session_id: str
    kind: str
    role: Role
    tenant_id: str | None
    key_id: str | None
    name: str
    csrf: str
    expires_at: datetime
    read_only: bool = False
    created_by: str | None = None
    has_flash: bool = False

    @property
    def principal(self) -> Principal:
        """The principal the session acts as (the API's own access rules apply to it): the
        key's id for a key sign-in, `link_<first 12 of the session id>` for a portal link."""
        key_id = self.key_id or f"link_{self.session_id[:12]}"
        return Principal(key_id=key_id, name=self.name, role=self.role,
                         tenant_id=self.tenant_id)

    @property
    def is_operator(self) -> bool:
        """True for a `super` or `viewer` session."""
        return self.role in ("super", "viewer")

    @property
    def can_pay(self) -> bool:
        """Whether the session may pay invoices and change the card on file: `super`, or a
        tenant session that is not read-only (a link made by a `viewer` key opens a read-only
        session: a viewer must not be able to charge a tenant's card through a link)."""
        return self.role == "super" or (self.role == "tenant" and not self.read_only)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def ensure_indexes(db: Db) -> None:
    """TTL indexes: expired links and sessions are removed by MongoDB (expiry is also checked
    on every read, so a late TTL pass changes nothing)."""
    await db[SESSIONS].create_index("expires_at", expireAfterSeconds=0)
    await db[LINKS].create_index("expires_at", expireAfterSeconds=0)


async def create_link(db: Db, settings: ApiSettings, tenant_id: str, created_by: str,
                      base_url: str | None = None, read_only: bool = False) -> PortalLink:
    """A new single-use link opening a session of `tenant_id` (the caller checked that the
    tenant exists and that `created_by`, an actor id, may do this). `base_url` is the public
    URL of the API (default `settings.portal_base_url()`); `read_only` links open sessions
    that can look but not pay nor change the card (links made by `viewer` keys)."""
    token = secrets.token_urlsafe(32)
    now = utc_now()
    expires = now + timedelta(minutes=settings.portal_link_minutes)
    await db[LINKS].insert_one({"_id": _digest(token), "tenant_id": tenant_id,
                                "created_by": created_by, "read_only": read_only,
                                "created_at": now, "expires_at": expires, "used_at": None})
    base = (base_url or settings.portal_base_url()).rstrip("/")
    return PortalLink(url=f"{base}{LINK_PATH}{token}", tenant_id=tenant_id, expires_at=expires)


async def _new_session(db: Db, settings: ApiSettings, *, kind: str, role: Role,
                       tenant_id: str | None, key_id: str | None, name: str,
                       read_only: bool = False, created_by: str | None = None
                       ) -> PortalSession:
    session = PortalSession(
        session_id=secrets.token_urlsafe(32), kind=kind, role=role, tenant_id=tenant_id,
        key_id=key_id, name=name, csrf=secrets.token_urlsafe(32),
        expires_at=utc_now() + timedelta(minutes=settings.portal_session_minutes),
        read_only=read_only, created_by=created_by)
    await db[SESSIONS].insert_one({
        "_id": session.session_id, "kind": kind, "role": role, "tenant_id": tenant_id,
        "key_id": key_id, "name": name, "csrf": session.csrf, "created_at": utc_now(),
        "expires_at": session.expires_at, "read_only": read_only, "created_by": created_by})
    return session


async def link_tenant(db: Db, token: str) -> str | None:
    """The tenant whose portal link `token` can still be opened (unused, unexpired), without
    using it up; None otherwise."""
    link = await db[LINKS].find_one(
        {"_id": _digest(token), "used_at": None, "expires_at": {"$gt": utc_now()}},
        projection={"tenant_id": 1})
    return str(link["tenant_id"]) if link else None


async def open_link(db: Db, settings: ApiSettings, token: str) -> PortalSession | None:
    """The new tenant session of portal link `token`, or None when the link is unknown,
    expired or already used (it is marked used in the same update that checks it)."""
    now = utc_now()
    link = await db[LINKS].find_one_and_update(
        {"_id": _digest(token), "used_at": None, "expires_at": {"$gt": now}},
        {"$set": {"used_at": now}})
    if link is None:
        return None
    created_by = str(link.get("created_by") or "unknown")
    return await _new_session(db, settings, kind="tenant", role="tenant",
                              tenant_id=str(link["tenant_id"]), key_id=None,
                              name=f"portal link from {created_by}",
                              read_only=bool(link.get("read_only")), created_by=created_by)


async def sign_in_with_key(db: Db, settings: ApiSettings, token: str) -> PortalSession | None:
    """A session for API key `token`: `operator` for `super` and `viewer`, `tenant` for a
    tenant key; None for an unknown, revoked or `ingest` key."""
    principal = await verify_token(MongoKeyStore(db), token.strip())
    if principal is None or principal.role == "ingest":
        return None
    kind = "tenant" if principal.role == "tenant" else "operator"
    return await _new_session(db, settings, kind=kind, role=principal.role,
                              tenant_id=principal.tenant_id, key_id=principal.key_id,
                              name=principal.name)


async def load_session(db: Db, session_id: str) -> PortalSession | None:
    """The unexpired session `session_id` whose key (if any) is not revoked, else None."""
    doc = await db[SESSIONS].find_one({"_id": session_id})
    if doc is None or doc["expires_at"] <= utc_now():
        return None
    if doc.get("key_id"):
        record = await MongoKeyStore(db).get(doc["key_id"])
        if record is None or record.revoked_at is not None:
            return None
    return PortalSession(session_id=doc["_id"], kind=doc["kind"], role=doc["role"],
                         tenant_id=doc.get("tenant_id"), key_id=doc.get("key_id"),
                         name=doc.get("name", ""), csrf=doc["csrf"],
                         expires_at=doc["expires_at"], read_only=bool(doc.get("read_only")),
                         created_by=doc.get("created_by"), has_flash=bool(doc.get("flash")))


@dataclass(frozen=True)
class Flash:
    """A one-time message for the session's next page: `kind` `ok` or `error`, `text` (plain
    text, escaped when rendered). Kept on the server, so nobody can put words on a page with a
    crafted link."""

    kind: str
    text: str


async def set_flash(db: Db, session_id: str, kind: str, text: str) -> None:
    """Show `text` once on the session's next page (replaces an unshown one)."""
    await db[SESSIONS].update_one({"_id": session_id},
                                  {"$set": {"flash": {"kind": kind, "text": text[:500]}}})


async def pop_flash(db: Db, session_id: str) -> Flash | None:
    """The session's pending message, removed in the same update (shown once)."""
    doc = await db[SESSIONS].find_one_and_update(
        {"_id": session_id, "flash": {"$ne": None}}, {"$set": {"flash": None}},
        projection={"flash": 1})
    if doc is None or not doc.get("flash"):
        return None
    return Flash(kind=str(doc["flash"]["kind"]), text=str(doc["flash"]["text"]))


async def end_session(db: Db, session_id: str) -> None:
    """Sign out: the session is deleted (its cookie no longer opens anything)."""
    await db[SESSIONS].delete_one({"_id": session_id})


def sign(settings: ApiSettings, session_id: str) -> str:
    """The cookie value for `session_id`: the id with its HMAC signature."""
    return Signer(settings.portal_signing_secret(), salt=_SALT).sign(session_id).decode()


def unsign(settings: ApiSettings, cookie: str) -> str | None:
    """The session id of a cookie value, None when its signature does not verify."""
    try:
        return Signer(settings.portal_signing_secret(), salt=_SALT).unsign(cookie).decode()
    except BadSignature:
        return None
