"""`POST /v1/usage` against the real broker and database: single events and batches, per-event
errors, the source restriction of ingest keys, media types, the broker's acknowledgement before
202, the per-day counts, and the events reaching the usage collector's aggregates."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY

from contracts.topics import TOPIC_USAGE
from services.api.ingest_counts import COLLECTION, accepted_by_api
from services.api.routes import ingest
from services.usage_collector.adapters.store import collector_stats
from services.usage_collector.app import run_collector
from services.usage_collector.query import usage_totals
from services.usage_collector.settings import UsageSettings
from tests.support.api import ApiHarness
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

SINGLE = {"Content-Type": "application/cloudevents+json"}
BATCH = {"Content-Type": "application/cloudevents-batch+json"}
T0 = datetime(2013, 9, 2, 10, tzinfo=UTC)


def event(n: int, tenant: str = "acme", source: str = "web", **data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0", "id": f"e{n}", "source": source, "type": "billing.usage",
        "subject": tenant, "time": f"2013-09-02T10:{n % 60:02d}:00Z",
        "data": {"meter": "cpu_hours", "quantity": "1.5", "service": "vm", **data},
    }


async def post(api: ApiHarness, token: str, body: Any, headers: dict[str, str]) -> Any:
    return await api.client.post("/v1/usage", content=json.dumps(body).encode(),
                                 headers={**api.auth(token), **headers})


async def on_topic(api: ApiHarness) -> list[dict[str, Any]]:
    """Every message on the usage topic, read up to the end offsets (key, headers, value)."""
    settings = api.ctx.settings
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        name = settings.topic(TOPIC_USAGE)
        tps = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: list[dict[str, Any]] = []

        async def read_to_the_end() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found.extend({"key": r.key, "headers": dict(r.headers),
                              "value": json.loads(r.value or b"")} for r in records)
            return all([await consumer.position(tp) >= ends[tp] for tp in tps])

        await eventually(read_to_the_end, what="the usage topic read to its end", seconds=30)
        return found
    finally:
        await consumer.stop()


def metric(outcome: str) -> float:
    value = REGISTRY.get_sample_value("billing_api_usage_events_total", {"outcome": outcome})
    return value or 0.0


async def test_a_single_event_is_published_re_encoded_and_keyed_by_tenant(
    api: ApiHarness,
) -> None:
    accepted_before = metric("accepted")
    response = await post(api, await api.key("ingest"), event(1), SINGLE)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "rejected": []}
    (message,) = await on_topic(api)
    assert message["key"] == b"acme"
    assert message["headers"]["event-type"] == b"UsageRecorded"
    assert message["value"]["id"] == "e1"
    assert message["value"]["data"]["quantity"] == "1.5"
    assert metric("accepted") == accepted_before + 1
    day = T0.date()
    assert await accepted_by_api(api.ctx.db, ["acme"], day, day.replace(day=3)) == {"acme": 1}


async def test_a_batch_with_bad_events_publishes_the_good_ones_and_lists_the_others(
    api: ApiHarness,
) -> None:
    good = [event(n) for n in range(5)] + [event(9, tenant="beta")]
    bad_quantity = event(20, quantity="-3")
    not_an_object = "hello"
    body = [*good[:2], bad_quantity, *good[2:], not_an_object]
    rejected_before = metric("rejected")
    response = await post(api, await api.key("super"), body, BATCH)
    assert response.status_code == 202, response.text
    result = response.json()
    assert result["accepted"] == 6
    assert [(r["index"], r["id"]) for r in result["rejected"]] == [(2, "e20"), (7, None)]
    assert result["rejected"][0]["errors"][0]["reason"] == "negative_quantity"
    assert result["rejected"][0]["errors"][0]["loc"] == "data.quantity"
    assert result["rejected"][1]["errors"][0]["reason"] == "validation_error"
    assert metric("rejected") == rejected_before + 2
    messages = await on_topic(api)
    assert sorted(m["value"]["id"] for m in messages) == sorted(e["id"] for e in good)
    counts = await api.ctx.db[COLLECTION].find({}, sort=[("_id", 1)]).to_list()
    assert [(c["_id"], c["events"]) for c in counts] == [
        ("acme|2013-09-02", 5), ("beta|2013-09-02", 1)]


async def test_a_request_without_a_valid_event_is_422_with_each_events_errors(
    api: ApiHarness,
) -> None:
    body = [event(1, meter="gpu_hours"), event(2, aggregation="max")]
    response = await post(api, await api.key("ingest"), body, BATCH)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["accepted"] == 0
    assert [(r["index"], r["errors"][0]["reason"]) for r in problem["rejected"]] == [
        (0, "unknown_aggregation"), (1, "aggregation_mismatch")]
    assert await api.ctx.db[COLLECTION].count_documents({}) == 0


async def test_a_key_restricted_to_a_source_publishes_only_that_source(
    api: ApiHarness,
) -> None:
    token = await api.key("ingest", source="web")
    body = [event(1), event(2, source="batch-jobs"), event(3)]
    response = await post(api, token, body, BATCH)
    assert response.status_code == 202, response.text
    (refused,) = response.json()["rejected"]
    assert refused["index"] == 1 and refused["id"] == "e2"
    assert [e["reason"] for e in refused["errors"]] == ["source_not_allowed"]
    assert sorted(m["value"]["id"] for m in await on_topic(api)) == ["e1", "e3"]
    alone = await post(api, token, event(4, source="batch-jobs"), SINGLE)
    assert alone.status_code == 422


@pytest.mark.parametrize(("content_type", "body", "status"), [
    ("application/json", b"{}", 415),
    ("text/plain", b"x", 415),
    ("application/cloudevents+json", b"{not json", 400),
    ("application/cloudevents-batch+json", b"[NaN]", 400),
    ("application/cloudevents-batch+json", b"[" * 100_000 + b"]" * 100_000, 400),
    ("application/cloudevents+json", b"\xff\xfe{", 400),
    ("application/cloudevents-batch+json", b"{}", 422),
    ("application/cloudevents-batch+json", b"[]", 422),
])
async def test_wrong_media_types_and_malformed_bodies_are_problems(
    api: ApiHarness, content_type: str, body: bytes, status: int
) -> None:
    response = await api.client.post("/v1/usage", content=body, headers={
        **api.auth(await api.key("ingest")), "Content-Type": content_type})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_more_than_a_thousand_events_is_413(api: ApiHarness) -> None:
    body = [event(n) for n in range(1001)]
    response = await post(api, await api.key("ingest"), body, BATCH)
    assert response.status_code == 413
    assert response.json()["max_events"] == 1000


async def test_without_the_brokers_acknowledgement_the_answer_is_503_and_nothing_is_counted(
    api: ApiHarness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = await api.key("ingest")

    async def refused(*args: Any, **kwargs: Any) -> None:
        raise KafkaConnectionError("broker down")

    async def unanswered(*args: Any, **kwargs: Any) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(ingest, "PUBLISH_TIMEOUT_SECONDS", 0.5)
    for publish in (refused, unanswered):
        monkeypatch.setattr(api.ctx.broker, "publish", publish)
        response = await post(api, token, [event(1), event(2)], BATCH)
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert "retry-after" in response.headers
    assert await api.ctx.db[COLLECTION].count_documents({}) == 0


@contextlib.asynccontextmanager
async def collector() -> AsyncIterator[None]:
    """The usage collector in this process until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_collector(UsageSettings(), stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def test_accepted_events_reach_the_collectors_aggregates(api: ApiHarness) -> None:
    body = [event(n, quantity="2.25") for n in range(10)]
    response = await post(api, await api.key("ingest"), body, BATCH)
    assert response.json()["accepted"] == 10
    db = api.ctx.db
    async with collector():
        await eventually(lambda: _aggregated(db, 10), what="10 events aggregated", seconds=60)
    (total,) = await usage_totals(db, "acme", T0, T0.replace(hour=11))
    assert (total.quantity, total.events) == (Decimal("22.50"), 10)


async def _aggregated(db: Any, n: int) -> bool:
    stats = await collector_stats(db)
    return bool(stats.get("aggregated", 0) >= n)


async def test_the_openapi_document_describes_both_media_types_and_the_answer(
    api: ApiHarness,
) -> None:
    document = (await api.client.get("/openapi.json")).json()
    operation = document["paths"]["/v1/usage"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {SINGLE["Content-Type"], BATCH["Content-Type"]}
    event = content[SINGLE["Content-Type"]]["schema"]
    assert event["properties"]["data"]["properties"]["meter"]["type"] == "string"
    assert content[BATCH["Content-Type"]]["schema"]["maxItems"] == 1000
    assert content[BATCH["Content-Type"]]["schema"]["items"] == event
    assert {"202", "400", "413", "415", "422", "503"} <= set(operation["responses"])
    assert "#/$defs/" not in json.dumps(document)  # every reference resolves in the document
