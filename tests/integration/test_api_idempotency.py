"""`Idempotency-Key` on the real database: the first response replayed (the write happened
once), another body or a request still running -> 409, failures not saved, keys scoped to
the API key."""

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, Request

from services.api.audit import COLLECTION as AUDIT
from services.api.audit import record_write
from services.api.auth import allow
from services.api.context import Ctx
from services.api.idempotency import COLLECTION
from services.api.principal import Principal
from services.api.settings import ApiSettings
from tests.support.api import ApiHarness, api_harness
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


class Gate:
    """Holds `POST /test/slow` until opened; counts the failures of `POST /test/flaky`."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.flaky_failures = 1


def routes_for(gate: Gate) -> APIRouter:
    router = APIRouter()
    Who = Annotated[Principal, Depends(allow("super", "tenant"))]

    @router.post("/test/credits", status_code=201)
    async def credit(ctx: Ctx, request: Request, who: Who, body: dict[str, Any]
                     ) -> dict[str, Any]:
        audit_id = await record_write(ctx, request, who, "credit.grant", "tenant:acme", body)
        return {"audit_id": audit_id}

    @router.post("/test/slow", status_code=201)
    async def slow(who: Who) -> dict[str, str]:
        await gate.open.wait()
        return {"done": "yes"}

    @router.post("/test/flaky")
    async def flaky(who: Who) -> dict[str, str]:
        if gate.flaky_failures:
            gate.flaky_failures -= 1
            raise RuntimeError("boom")
        return {"done": "yes"}

    return router


@pytest.fixture
async def gated(billing_env: dict[str, str]) -> AsyncIterator[tuple[ApiHarness, Gate]]:
    gate = Gate()
    async with api_harness(ApiSettings(), [routes_for(gate)]) as harness:
        yield harness, gate
        await harness.ctx.client.drop_database(harness.ctx.settings.mongo_db)


async def test_a_repeated_key_replays_the_first_response_and_writes_once(
    gated: tuple[ApiHarness, Gate],
) -> None:
    api, _ = gated
    headers = {**api.auth(await api.key("super")), "Idempotency-Key": "credit-1"}
    first = await api.client.post("/test/credits", json={"amount": "5"}, headers=headers)
    again = await api.client.post("/test/credits", json={"amount": "5"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == first.headers["content-type"]
    assert "idempotent-replayed" not in first.headers
    assert await api.ctx.db[AUDIT].count_documents({}) == 1


async def test_the_same_key_with_another_body_is_a_409_conflict(
    gated: tuple[ApiHarness, Gate],
) -> None:
    api, _ = gated
    headers = {**api.auth(await api.key("super")), "Idempotency-Key": "credit-1"}
    await api.client.post("/test/credits", json={"amount": "5"}, headers=headers)
    other = await api.client.post("/test/credits", json={"amount": "6"}, headers=headers)
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert await api.ctx.db[AUDIT].count_documents({}) == 1


async def test_keys_are_scoped_to_the_api_key(gated: tuple[ApiHarness, Gate]) -> None:
    api, _ = gated
    for role, tenant in (("super", None), ("tenant", "acme")):
        headers = {**api.auth(await api.key(role, tenant)), "Idempotency-Key": "same"}
        response = await api.client.post("/test/credits", json={"a": 1}, headers=headers)
        assert "idempotent-replayed" not in response.headers
    assert await api.ctx.db[AUDIT].count_documents({}) == 2


async def test_a_request_still_running_makes_a_second_one_with_its_key_a_409(
    gated: tuple[ApiHarness, Gate],
) -> None:
    api, gate = gated
    headers = {**api.auth(await api.key("super")), "Idempotency-Key": "slow-1"}
    first = asyncio.create_task(api.client.post("/test/slow", headers=headers))
    await eventually(lambda: api.ctx.db[COLLECTION].find_one({"state": "in_flight"}),
                     what="the first request's claim")
    second = await api.client.post("/test/slow", headers=headers)
    assert second.status_code == 409
    gate.open.set()
    assert (await first).status_code == 201
    replay = await api.client.post("/test/slow", headers=headers)
    assert (replay.status_code, replay.headers["idempotent-replayed"]) == (201, "true")


async def test_a_5xx_is_not_saved_so_the_key_can_be_retried(
    gated: tuple[ApiHarness, Gate],
) -> None:
    api, _ = gated
    headers = {**api.auth(await api.key("super")), "Idempotency-Key": "flaky-1"}
    failed = await api.client.post("/test/flaky", headers=headers)
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    assert "boom" not in failed.text
    retried = await api.client.post("/test/flaky", headers=headers)
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers


async def test_a_request_that_fails_validation_does_not_use_up_its_key(
    gated: tuple[ApiHarness, Gate],
) -> None:
    api, _ = gated
    headers = {**api.auth(await api.key("super")), "Idempotency-Key": "fix-and-retry"}
    invalid = await api.client.post("/test/credits", content=b"[1, 2]", headers={
        **headers, "Content-Type": "application/json"})
    assert invalid.status_code == 422
    fixed = await api.client.post("/test/credits", json={"amount": "5"}, headers=headers)
    assert fixed.status_code == 201 and "idempotent-replayed" not in fixed.headers
    assert await api.ctx.db[AUDIT].count_documents({}) == 1


async def test_a_key_longer_than_255_characters_is_a_400(
    gated: tuple[ApiHarness, Gate],
) -> None:
    api, _ = gated
    headers = {**api.auth(await api.key("super")), "Idempotency-Key": "k" * 256}
    response = await api.client.post("/test/credits", json={}, headers=headers)
    assert response.status_code == 400
    assert await api.ctx.db[AUDIT].count_documents({}) == 0


async def test_a_changed_retention_updates_the_ttl_index(billing_env: dict[str, str]) -> None:
    for ttl in (86_400, 3_600):
        async with api_harness(ApiSettings(api_idempotency_ttl_seconds=ttl)) as api:
            indexes = await api.ctx.db[COLLECTION].index_information()
            [ttl_index] = [i for i in indexes.values() if "expireAfterSeconds" in i]
            assert ttl_index["expireAfterSeconds"] == ttl
            if ttl == 3_600:
                await api.ctx.client.drop_database(api.ctx.settings.mongo_db)
