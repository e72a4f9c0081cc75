"""Errors raised by handlers become problem documents: an unavailable dependency 503 with
`Retry-After`, anything unexpected 500 without internals; a validation error 422 naming the
field."""

from collections.abc import AsyncIterator

import pytest
from aiokafka.errors import KafkaConnectionError
from fastapi import APIRouter
from pydantic import BaseModel
from pymongo.errors import ServerSelectionTimeoutError

from services.api.settings import ApiSettings
from services.common.errors import DependencyUnavailable
from tests.support.api import ApiHarness, api_harness

pytestmark = pytest.mark.integration
FAILURES: dict[str, Exception] = {
    "mongo": ServerSelectionTimeoutError("no primary"),
    "kafka": KafkaConnectionError("no broker"),
    "dependency": DependencyUnavailable("MongoDB"),
    "bug": ZeroDivisionError("secret internals"),
}


class Credit(BaseModel):
    amount: int


def failing_routes() -> APIRouter:
    router = APIRouter()

    @router.get("/test/fail/{what}")
    async def fail(what: str) -> None:
        raise FAILURES[what]

    @router.post("/test/credit")
    async def credit(body: Credit) -> Credit:
        return body

    return router


@pytest.fixture
async def api(billing_env: dict[str, str]) -> AsyncIterator[ApiHarness]:
    async with api_harness(ApiSettings(), [failing_routes()]) as harness:
        yield harness


@pytest.mark.parametrize("what", ["mongo", "kafka", "dependency"])
async def test_an_unavailable_dependency_is_a_503_with_retry_after(
    api: ApiHarness, what: str,
) -> None:
    response = await api.client.get(f"/test/fail/{what}")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0


async def test_an_unexpected_error_is_a_500_without_internals(api: ApiHarness) -> None:
    response = await api.client.get("/test/fail/bug", headers={"X-Request-Id": "r-500"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "r-500"
    assert "secret internals" not in response.text and "Traceback" not in response.text


async def test_an_invalid_body_is_a_422_naming_the_field(api: ApiHarness) -> None:
    response = await api.client.post("/test/credit", json={"amount": "lots"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["loc"] == ["body", "amount"] and error["type"] == "int_parsing"
