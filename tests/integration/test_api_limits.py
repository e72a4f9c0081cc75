"""Request limits: bodies over `api_max_body_bytes` get 413 (announced or streamed), keys over
their rate get 429 with `Retry-After`."""

from collections.abc import AsyncIterator

import pytest

from services.api.settings import ApiSettings
from tests.support.api import api_harness

pytestmark = pytest.mark.integration


async def test_a_body_announced_larger_than_the_limit_gets_413(
    billing_env: dict[str, str],
) -> None:
    async with api_harness(ApiSettings(api_max_body_bytes=100)) as api:
        token = await api.key("super")
        response = await api.client.post("/v1/audit", content=b"x" * 101,
                                         headers=api.auth(token))
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        small = await api.client.post("/v1/audit", content=b"x" * 100, headers=api.auth(token))
        assert small.status_code == 405  # through the limit, to the router


async def test_a_streamed_body_growing_past_the_limit_gets_413(
    billing_env: dict[str, str],
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 30

    async with api_harness(ApiSettings(api_max_body_bytes=100)) as api:
        token = await api.key("super")
        response = await api.client.post("/v1/audit", content=chunks(),
                                         headers=api.auth(token))
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert response.status_code == 413


async def test_a_key_over_its_rate_gets_429_with_retry_after(
    billing_env: dict[str, str],
) -> None:
    async with api_harness(ApiSettings(api_rate_limit="2/minute")) as api:
        token, other = await api.key("super"), await api.key("super")
        statuses = [(await api.client.get("/v1/audit", headers=api.auth(token))).status_code
                    for _ in range(2)]
        assert statuses == [200, 200]
        limited = await api.client.get("/v1/audit", headers=api.auth(token))
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert (await api.client.get("/v1/audit", headers=api.auth(other))).status_code == 200
