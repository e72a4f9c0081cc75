"""API keys: one suite run against both key stores (MongoDB and in memory), and revoked keys
refused by the running API."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from services.api.keys import (
    InvalidKeySpec,
    KeyStore,
    MemoryKeyStore,
    MongoKeyStore,
    issue_key,
    verify_token,
)
from tests.support.api import ApiHarness

pytestmark = pytest.mark.integration


@pytest.fixture(params=["mongo", "memory"])
async def store(request: pytest.FixtureRequest, mongo_db: Any) -> AsyncIterator[KeyStore]:
    yield MongoKeyStore(mongo_db) if request.param == "mongo" else MemoryKeyStore()


async def test_a_key_verifies_to_its_principal_and_only_its_hash_is_kept(
    store: KeyStore,
) -> None:
    token, record = await issue_key(store, role="tenant", tenant_id="acme", name="portal")
    principal = await verify_token(store, token)
    assert principal == record.principal
    assert (principal.role, principal.tenant_id, principal.name) == ("tenant", "acme", "portal")
    assert token.startswith(principal.key_id + "_")
    [stored] = await store.all()
    assert token.split("_")[-1] not in repr(stored)


async def test_wrong_secrets_unknown_ids_malformed_and_revoked_keys_do_not_verify(
    store: KeyStore,
) -> None:
    token, record = await issue_key(store, role="super", name="ops")
    secret = token.split("_")[-1]
    flipped = token[: -len(secret)] + ("f" if secret[0] != "f" else "e") + secret[1:]
    for bad in (flipped, "key_0000000000000000_" + secret, "Bearer " + token, "", token + "0"):
        assert await verify_token(store, bad) is None, bad
    assert await store.revoke(record.principal.key_id, datetime.now(UTC))
    assert await verify_token(store, token) is None
    assert not await store.revoke("key_unknown", datetime.now(UTC))


@pytest.mark.parametrize("role, tenant, source", [
    ("tenant", None, None), ("viewer", "acme", None), ("super", None, "s"), ("admin", None, None),
])
async def test_role_tenant_and_source_must_fit(
    store: KeyStore, role: str, tenant: str | None, source: str | None,
) -> None:
    with pytest.raises(InvalidKeySpec):
        await issue_key(store, role=role, name="n", tenant_id=tenant, source=source)
    assert await store.all() == []


async def test_a_revoked_key_gets_401(api: ApiHarness) -> None:
    token = await api.key("super")
    await MongoKeyStore(api.ctx.db).revoke(token[:20], datetime.now(UTC))
    response = await api.client.get("/v1/audit", headers=api.auth(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
