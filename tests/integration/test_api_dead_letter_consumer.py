"""The API's dead-letter consumer against the real broker and database: a start that fails
(Kafka not reachable yet) is retried with back-off, counted, and the consumer then lists the
dead letters as usual (docs/api-endpoints.md, "Operations")."""

from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY

from services.api import deadletters
from services.api.settings import ApiSettings
from tests.integration.test_api_operations import publish_dead_letter
from tests.support.api import api_harness
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_a_consumer_that_failed_to_start_retries_and_then_lists_dead_letters(
    billing_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = deadletters.make_broker
    refused = {"left": 2}

    def flaky_broker(*args: Any, **kwargs: Any) -> KafkaBroker:
        broker = made(*args, **kwargs)
        start = broker.start

        async def first_starts_fail() -> None:
            if refused["left"]:
                refused["left"] -= 1
                raise KafkaConnectionError("Unable to bootstrap from the cluster")
            await start()

        broker.start = first_starts_fail  # type: ignore[method-assign]
        return broker

    monkeypatch.setattr(deadletters, "make_broker", flaky_broker)
    monkeypatch.setattr(deadletters, "START_RETRY_BASE", 0.05)
    failures = _sample("billing_api_dead_letter_consumer_start_failures_total")
    async with api_harness(ApiSettings(api_dead_letter_consumer=True)) as api:
        token = await api.key("viewer")
        await eventually(lambda: _sample("billing_api_dead_letter_consumer_up") == 1,
                         what="the consumer up after two failed starts")
        assert _sample("billing_api_dead_letter_consumer_start_failures_total") \
            == failures + 2
        event_id = await publish_dead_letter(api, "validation_error", "after the retries")

        async def listed() -> bool:
            answer = await api.client.get("/v1/dead-letters", headers=api.auth(token))
            return any(d["event_id"] == event_id for d in answer.json()["data"])

        await eventually(listed, what="the dead letter listed")
        await api.ctx.client.drop_database(api.ctx.settings.mongo_db)
    assert _sample("billing_api_dead_letter_consumer_up") == 0
