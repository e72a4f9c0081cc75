"""The invoicer worker over Kafka: configuration commands (refused, invalid, accepted), the
outbox relay after a crash, payments applied from `billing.payment.v1`."""

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from contracts import (
    TOPIC_DEAD_LETTER,
    TOPIC_INVOICE,
    TOPIC_PAYMENT,
    TOPIC_TENANT,
    TOPIC_TENANT_CONFIG,
    PaymentSucceeded,
)
from services.common.codec import encode, headers_for
from services.common.lag import committed_offsets, pending_partitions
from services.common.signing import sign
from services.common.tracking import PROCESSED_EVENTS, tracking_id
from services.common.worker import make_broker, publish_event
from services.invoicer.api import apply_config_file, wait_config_applied
from services.invoicer.app import serve
from services.invoicer.handlers import PAYMENT_CONSUMER
from services.invoicer.names import OUTBOX, SERVICE
from services.invoicer.reports import config_applied, list_invoices
from services.invoicer.schedule import run_cycle
from services.invoicer.settings import InvoicerSettings
from tests.integration.test_invoicer_support import (  # the settings and worker fixtures
    config,
    open_store,
    utc,
    worker_fixture,  # noqa: F401
    worker_settings_fixture,  # noqa: F401
)
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
Record = dict[str, Any]


async def collect(
    settings: InvoicerSettings, topic: str, done: Callable[[list[Record]], bool],
    seconds: float = 90.0,
) -> list[Record]:
    """Read `topic` from the start until `done(records)` or the deadline."""
    consumer = AIOKafkaConsumer(settings.topic(topic), bootstrap_servers=
                                settings.kafka_bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Record] = []
    try:
        deadline = time.monotonic() + seconds
        while not done(records) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                for m in msgs:
                    records.append({"type": dict(m.headers).get("event-type", b"").decode(),
                                    **json.loads(m.value)})
    finally:
        await consumer.stop()
    return records


async def consumed(settings: InvoicerSettings, topic: str) -> bool:
    """Whether the invoicer's consumer group committed past every record of `topic` (a
    contract topic name)."""
    committed = await committed_offsets(settings, settings.group(SERVICE),
                                        [settings.topic(topic)])
    return bool(committed) and not await pending_partitions(settings, committed)


async def payments_consumed(settings: InvoicerSettings) -> bool:
    """Whether the invoicer's consumer group committed past every record of the payment topic."""
    return await consumed(settings, TOPIC_PAYMENT)


async def test_a_non_super_configuration_is_refused_audited_and_dead_lettered(
    settings: InvoicerSettings, worker: None,
) -> None:
    key = settings.signing_key()
    intruder = sign(config("acme", actor={"user_id": "eve", "role": "admin"}), key)
    body, _ = encode(sign(config("globex"), key))
    invalid = json.loads(body)
    invalid["settings"]["billing_day_of_month"] = 32
    async with make_broker(settings) as broker:
        await publish_event(broker, settings, intruder, TOPIC_TENANT_CONFIG, "acme")
        await broker.publish(json.dumps(invalid).encode(), settings.topic(TOPIC_TENANT_CONFIG),
                             key=b"globex", headers={k: v.decode() for k, v in
                                                     headers_for("BillingConfigSubmitted")})
        await broker.publish(b"{not json", settings.topic(TOPIC_TENANT_CONFIG), key=b"x")
        await publish_event(broker, settings, sign(config("hooli"), key), TOPIC_TENANT_CONFIG,
                            "hooli")

    letters = await collect(settings, TOPIC_DEAD_LETTER, lambda r: len(r) >= 3)
    assert sorted(r["reason"] for r in letters) == ["forbidden", "invalid_json", "validation_error"]
    assert all(r["service"] == "invoicer" for r in letters)
    await eventually(lambda: config_applied(settings, ["hooli"]), what="hooli applied")
    assert not await config_applied(settings, ["acme"])
    async with open_store(settings) as store:
        [audit] = await store.audit.find({}).to_list()
        assert audit["who"] == {"user_id": "eve", "role": "admin"}
        assert audit["what"]["tenant_id"] == "acme" and audit["why"]["reason"] == "forbidden"
        assert audit["when"]["refused_at"] is not None


async def test_an_invoice_written_before_a_crash_is_published_later_recognisably(
    settings: InvoicerSettings,
) -> None:
    async with open_store(settings) as store:
        from services.invoicer.handlers import apply_config

        await apply_config(store, config("acme"))
        [number] = (await run_cycle(store, utc(2013, 7, 1))).issued  # then the process "dies"
        assert await store.db[OUTBOX].count_documents(
            {"published": False, "type": "InvoiceIssued"}) == 1

    stop = asyncio.Event()
    task = asyncio.create_task(serve(stop, settings))
    try:
        issued = await collect(settings, TOPIC_INVOICE, lambda r: len(r) >= 1)
        assert [(r["type"], r["invoice_number"]) for r in issued] == [("InvoiceIssued", number)]
        async with open_store(settings) as store:
            # A crash after publishing but before marking: the relay publishes it again ...
            await store.db[OUTBOX].update_many({}, {"$set": {"published": False}})
            again = await collect(settings, TOPIC_INVOICE, lambda r: len(r) >= 2)
            # ... with the same event id, which consumers recognise as a duplicate.
            assert [r["event_id"] for r in again] == ["invoice-issued:acme:2013-06-01"] * 2
            assert again[0] == again[1]

            [invoice] = await list_invoices(store)
            payment = PaymentSucceeded(
                invoice_id=invoice["_id"], invoice_number=number, tenant_id="acme",
                amount=invoice["amount"], currency="USD", payment_reference="pi_123",
                payment_method="card visa 4242", paid_at=utc(2013, 7, 1, 0, 5))
            async with make_broker(settings) as broker:
                await publish_event(broker, settings, payment, TOPIC_PAYMENT, "acme")
                await publish_event(broker, settings, payment, TOPIC_PAYMENT, "acme")
            changes = await collect(settings, TOPIC_INVOICE, lambda r: len(r) >= 3)
            assert [(r["type"], r.get("status")) for r in changes[2:]] == [
                ("InvoiceStatusChanged", "paid")]
            [invoice] = await list_invoices(store)
            assert (invoice["status"], invoice["paid_date"], invoice["payment_method"]) == (
                "paid", "2013-07-01", "card visa 4242")
            # the duplicate was consumed (the group's offset is past it) and changed nothing:
            # one tracking record for the payment's event id, one status change
            await eventually(lambda: payments_consumed(settings), what="both payments consumed")
            assert await store.db[PROCESSED_EVENTS].count_documents(
                {"_id": tracking_id(PAYMENT_CONSUMER, payment.event_id)}) == 1
            [invoice] = await list_invoices(store)
            assert len(invoice["history"]) == 2
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


def tenants_file(directory: Path, name: str, email: str) -> Path:
    """A one-tenant file in the shared tenants-file shape, with `email` as its billing email."""
    path = directory / f"{name}.json"
    path.write_text(json.dumps({"tenants": [{
        "tenant_id": "acme", "name": "Acme Corp", "timezone": "UTC",
        "effective_from": "2013-06-01",
        "billing_config": {
            "flat_rate_amount": "49.00", "currency": "USD", "billing_frequency": "monthly",
            "billing_email": email, "auto_generate_invoices": True, "billing_day_of_month": 1,
            "payment_due_days": 14, "email_notifications": True},
    }]}))
    return path


async def test_reapplying_an_earlier_configuration_makes_it_a_new_current_version(
    settings: InvoicerSettings, worker: None, tmp_path: Path,
) -> None:
    first = tenants_file(tmp_path, "a", "first@acme.example")
    second = tenants_file(tmp_path, "b", "second@acme.example")
    for path in (first, second, first):
        submitted = await apply_config_file(settings, path, actor_id="ops-admin", role="super")
        await wait_config_applied(settings, submitted, timeout=60)
    async with open_store(settings) as store:
        versions = await store.configs.find({"tenant_id": "acme"}).sort("version").to_list()
        assert [v["command"]["settings"]["billing_email"] for v in versions] == [
            "first@acme.example", "second@acme.example", "first@acme.example"]
        assert [v["version"] for v in versions] == [1, 2, 3]
        tenant = await store.tenant("acme")
        assert tenant is not None and tenant["version"] == 3
        assert tenant["config"]["settings"]["billing_email"] == "first@acme.example"
    applied = await collect(settings, TOPIC_TENANT, lambda r: len(r) >= 3, seconds=60)
    assert [(r["type"], r["config_version"], r["billing_email"]) for r in applied] == [
        ("BillingConfigApplied", 1, "first@acme.example"),
        ("BillingConfigApplied", 2, "second@acme.example"),
        ("BillingConfigApplied", 3, "first@acme.example")]


async def test_unsigned_forged_and_wrongly_keyed_configurations_are_refused_and_audited(
    settings: InvoicerSettings, worker: None,
) -> None:
    key = settings.signing_key()
    unsigned = config("acme")
    forged = json.loads(encode(sign(config("globex"), key))[0])
    forged["settings"]["flat_rate_amount"] = 1  # a price changed after signing
    wrong_key = sign(config("initech"), b"not-the-platform-key-" * 2)
    valid = sign(config("hooli"), key)
    async with make_broker(settings) as broker:
        await publish_event(broker, settings, unsigned, TOPIC_TENANT_CONFIG, "acme")
        await broker.publish(json.dumps(forged).encode(), settings.topic(TOPIC_TENANT_CONFIG),
                             key=b"globex", headers={k: v.decode() for k, v in
                                                     headers_for("BillingConfigSubmitted")})
        await publish_event(broker, settings, wrong_key, TOPIC_TENANT_CONFIG, "initech")
        await publish_event(broker, settings, valid, TOPIC_TENANT_CONFIG, "hooli")

    letters = await collect(settings, TOPIC_DEAD_LETTER, lambda r: len(r) >= 3, seconds=60)
    assert sorted((r["key"], r["reason"]) for r in letters) == [
        ("acme", "forbidden"), ("globex", "forbidden"), ("initech", "forbidden")]
    await eventually(lambda: config_applied(settings, ["hooli"]), what="hooli applied")
    async with open_store(settings) as store:
        audits = {a["what"]["tenant_id"]: a for a in await store.audit.find({}).to_list()}
        assert sorted(audits) == ["acme", "globex", "initech"]
        assert all(a["why"]["reason"] == "forbidden" for a in audits.values())
        assert "unsigned" in audits["acme"]["why"]["detail"]
        assert "signature" in audits["globex"]["why"]["detail"]
        assert await store.tenants.distinct("_id") == ["hooli"]


async def test_the_worker_does_not_start_without_a_signing_key(
    billing_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.invoicer.settings import MissingSigningKey

    monkeypatch.delenv("BILLING_COMMAND_SIGNING_KEY")
    with pytest.raises(MissingSigningKey, match="BILLING_COMMAND_SIGNING_KEY"):
        await asyncio.wait_for(serve(asyncio.Event(), InvoicerSettings()), timeout=30)
