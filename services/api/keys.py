"""API keys (collection `api_keys`; docs/api.md, "Authentication and keys").

A key is `key_<16 hex>_<64 hex>`: the first part is its public id (shown by `billing keys
list`, written into audit records as the actor), the rest a secret of 256 random bits. Only the
SHA-256 of the secret is stored: a salted slow hash protects low-entropy passwords against
guessing, but a uniformly random 256-bit secret cannot be guessed, so a fast hash is as safe and
keeps every request cheap. A presented key is looked up by its id and its hash compared with
`hmac.compare_digest` (constant time).
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase

from services.api.principal import ROLES, Principal, Role

COLLECTION = "api_keys"
_TOKEN = re.compile(r"^(key_[0-9a-f]{16})_([0-9a-f]{64})$")


class InvalidKeySpec(ValueError):
    """The role, tenant and source of a new key do not fit together."""


@dataclass(frozen=True)
class KeyRecord:
    """A stored key: its principal, the secret's SHA-256 (hex), when it was created and, once
    revoked, when."""

    principal: Principal
    secret_sha256: str
    created_at: datetime
    revoked_at: datetime | None = None

    def public(self) -> dict[str, Any]:
        """The key as `billing keys list` shows it (never the hash)."""
        p = self.principal
        return {"key_id": p.key_id, "name": p.name, "role": p.role, "tenant_id": p.tenant_id,
                "source": p.source, "created_at": self.created_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


class KeyStore(Protocol):
    """Where keys live: `MongoKeyStore` and `MemoryKeyStore` behave the same."""

    async def insert(self, record: KeyRecord) -> None: ...
    async def get(self, key_id: str) -> KeyRecord | None: ...
    async def all(self) -> list[KeyRecord]: ...
    async def revoke(self, key_id: str, at: datetime) -> bool: ...


def check_spec(role: str, tenant_id: str | None, source: str | None) -> Role:
    """`role` as a `Role`; raises `InvalidKeySpec` unless: the role is one of `ROLES`, a tenant
    key names its tenant and no other role does, and only an ingest key has a source."""
    if role not in ROLES:
        raise InvalidKeySpec(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role == "tenant" and not tenant_id:
        raise InvalidKeySpec("a tenant key needs --tenant")
    if role != "tenant" and tenant_id:
        raise InvalidKeySpec("only a tenant key has a tenant")
    if source and role != "ingest":
        raise InvalidKeySpec("only an ingest key can be restricted to a source")
    return role


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """`(key_id, secret)` of a well-formed key, else None."""
    match = _TOKEN.match(token)
    return (match.group(1), match.group(2)) if match else None


async def issue_key(store: KeyStore, *, role: str, name: str, tenant_id: str | None = None,
                    source: str | None = None) -> tuple[str, KeyRecord]:
    """Create a key; returns `(token, record)`. The token is shown once and never stored.
    Raises `InvalidKeySpec` (see `check_spec`) or `ValueError` for an empty name."""
    checked = check_spec(role, tenant_id, source)
    if not name.strip():
        raise ValueError("a key needs a name")
    key_id, secret = f"key_{secrets.token_hex(8)}", secrets.token_hex(32)
    record = KeyRecord(Principal(key_id, name, checked, tenant_id or None, source or None),
                       _sha256(secret), datetime.now(UTC))
    await store.insert(record)
    return f"{key_id}_{secret}", record


async def verify_token(store: KeyStore, token: str) -> Principal | None:
    """The principal of a valid, unrevoked key; None for a malformed, unknown or revoked one
    or a wrong secret."""
    parsed = parse_token(token)
    if parsed is None:
        return None
    record = await store.get(parsed[0])
    if record is None or record.revoked_at is not None:
        return None
    if not hmac.compare_digest(record.secret_sha256, _sha256(parsed[1])):
        return None
    return record.principal


async def create_key(db: AsyncDatabase[dict[str, Any]], *, role: str, name: str,
                     tenant_id: str | None = None, source: str | None = None) -> str:
    """Create a key in `db` (collection `api_keys`) and return its token (show it once).
    Raises `InvalidKeySpec` for a role/tenant/source that do not fit."""
    token, _ = await issue_key(MongoKeyStore(db), role=role, name=name, tenant_id=tenant_id,
                               source=source)
    return token


def _to_doc(r: KeyRecord) -> dict[str, Any]:
    p = r.principal
    return {"_id": p.key_id, "name": p.name, "role": p.role, "tenant_id": p.tenant_id,
            "source": p.source, "secret_sha256": r.secret_sha256, "created_at": r.created_at,
            "revoked_at": r.revoked_at}


def _from_doc(d: dict[str, Any]) -> KeyRecord:
    return KeyRecord(Principal(d["_id"], d["name"], d["role"], d.get("tenant_id"),
                               d.get("source")),
                     d["secret_sha256"], d["created_at"], d.get("revoked_at"))


class MongoKeyStore:
    """Keys in MongoDB collection `api_keys`, one document per key, `_id` = key id."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._coll = db[COLLECTION]

    async def insert(self, record: KeyRecord) -> None:
        await self._coll.insert_one(_to_doc(record))

    async def get(self, key_id: str) -> KeyRecord | None:
        doc = await self._coll.find_one({"_id": key_id})
        return _from_doc(doc) if doc else None

    async def all(self) -> list[KeyRecord]:
        return [_from_doc(d) async for d in self._coll.find({}).sort("created_at", 1)]

    async def revoke(self, key_id: str, at: datetime) -> bool:
        found = await self._coll.find_one_and_update(
            {"_id": key_id}, [{"$set": {"revoked_at": {"$ifNull": ["$revoked_at", at]}}}])
        return found is not None


class MemoryKeyStore:
    """Keys in a dict (tests)."""

    def __init__(self) -> None:
        self._keys: dict[str, KeyRecord] = {}

    async def insert(self, record: KeyRecord) -> None:
        if record.principal.key_id in self._keys:
            raise ValueError(f"duplicate key id {record.principal.key_id}")
        self._keys[record.principal.key_id] = record

    async def get(self, key_id: str) -> KeyRecord | None:
        return self._keys.get(key_id)

    async def all(self) -> list[KeyRecord]:
        return sorted(self._keys.values(), key=lambda r: r.created_at)

    async def revoke(self, key_id: str, at: datetime) -> bool:
        record = self._keys.get(key_id)
        if record is None:
            return False
        if record.revoked_at is None:
            self._keys[key_id] = KeyRecord(record.principal, record.secret_sha256,
                                           record.created_at, at)
        return True
