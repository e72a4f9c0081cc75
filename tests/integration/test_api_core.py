"""The API's shared behaviour against the real broker and database: authentication (401),
roles (403), problem documents, request ids, the ops routes."""

import pytest

from tests.support.api import ApiHarness

pytestmark = pytest.mark.integration


async def test_a_request_without_a_key_gets_401_with_a_bearer_challenge(
    api: ApiHarness,
) -> None:
    response = await api.client.get("/v1/audit")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401


@pytest.mark.parametrize("token", ["nonsense", "key_0123456789abcdef_" + "0" * 64])
async def test_a_malformed_or_unknown_key_gets_401(api: ApiHarness, token: str) -> None:
    response = await api.client.get("/v1/audit", headers=api.auth(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_key_with_a_wrong_secret_gets_401(api: ApiHarness) -> None:
    token = await api.key("super")
    wrong = token[:-1] + ("0" if token[-1] != "0" else "1")
    response = await api.client.get("/v1/audit", headers=api.auth(wrong))
    assert response.status_code == 401


async def test_a_role_without_the_right_gets_403(api: ApiHarness) -> None:
    response = await api.client.get("/v1/audit", headers=api.auth(await api.key("viewer")))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_super_role_reads_the_audit(api: ApiHarness) -> None:
    response = await api.client.get("/v1/audit", headers=api.auth(await api.key("super")))
    assert response.status_code == 200, response.text


async def test_the_request_id_is_echoed_or_made_up(api: ApiHarness) -> None:
    given = await api.client.get("/healthz", headers={"X-Request-Id": "req-123"})
    assert given.headers["x-request-id"] == "req-123"
    made = await api.client.get("/healthz", headers={"X-Request-Id": "x" * 129})
    assert made.headers["x-request-id"] != "x" * 129 and len(made.headers["x-request-id"]) == 36


async def test_unknown_routes_and_methods_are_problems(api: ApiHarness) -> None:
    missing = await api.client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = await api.client.delete("/healthz")
    assert wrong.status_code == 405
    assert wrong.headers["content-type"] == "application/problem+json"
    assert "GET" in wrong.headers["allow"]


async def test_health_readiness_and_metrics_answer(api: ApiHarness) -> None:
    assert (await api.client.get("/healthz")).status_code == 200
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"mongodb": True, "kafka": True}
    metrics = await api.client.get("/metrics")
    assert 'billing_api_requests_total{method="GET",route="/readyz",status="200"}' \
        in metrics.text


async def test_the_access_log_line_carries_the_request_id(
    api: ApiHarness, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("INFO", logger="services.api.requests"):
        await api.client.get("/v1/audit", headers={"X-Request-Id": "trace-me"})
    [line] = [r for r in caplog.records if getattr(r, "request_id", None) == "trace-me"]
    assert line.getMessage().startswith("GET /v1/audit -> 401")
    assert line.__dict__["route"] == "/v1/audit"
