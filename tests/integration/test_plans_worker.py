"""The plan catalog's command against MongoDB and through the invoicer worker: a new version
per changed submission, none for an identical one or a redelivery, refusals audited and
dead-lettered."""

import json
from datetime import datetime
from typing import Any

import pytest

from contracts import TOPIC_DEAD_LETTER, TOPIC_TENANT_CONFIG, Actor, Plan, PlanSubmitted
from services.common.codec import encode, headers_for
from services.common.errors import PermanentError
from services.common.settings import CommonSettings
from services.common.signing import sign
from services.common.worker import make_broker, publish_event
from services.invoicer.adapters.plans import plan_history, plan_version
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.api import list_plans
from services.invoicer.plan_handlers import apply_plan
from services.invoicer.settings import InvoicerSettings
from tests.integration.test_invoicer_support import (  # the settings and worker fixtures
    open_store,
    utc,
    worker_fixture,  # noqa: F401
    worker_settings_fixture,  # noqa: F401
)
from tests.integration.test_invoicer_worker import collect, consumed
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
SUPER = Actor(user_id="key:ops", role="super")


def plan(code: str = "starter", **fields: Any) -> Plan:
    """A monthly USD plan with a computations limit and a per-unit charge."""
    body: dict[str, Any] = {
        "code": code, "name": "Starter", "currency": "USD", "billing_frequency": "monthly",
        "flat_amount": 2900,
        "price_plan": {"charges": [{"meter": "computations", "model": "per_unit",
                                    "unit_price": "0.01"}]},
        "limits": [{"meter": "computations", "limit": "1000", "hard": True}], **fields}
    return Plan.model_validate(body)


def submit(event_id: str, the_plan: Plan | None = None, actor: Actor = SUPER,
           at: datetime | None = None) -> PlanSubmitted:
    return PlanSubmitted(event_id=event_id, occurred_at=at or utc(2026, 11, 1),
                         plan=the_plan or plan(), actor=actor)


async def refused(store: InvoicerStore, command: PlanSubmitted) -> str:
    """The reason `apply_plan` refuses `command` with; its audit record must say so."""
    with pytest.raises(PermanentError) as exc:
        await apply_plan(store, command)
    audit = await store.audit.find_one({"_id": command.event_id})
    assert audit is not None and audit["why"]["reason"] == exc.value.reason
    assert audit["what"]["command"] == "PlanSubmitted"
    assert audit["what"]["code"] == command.plan.code
    return exc.value.reason


async def test_each_changed_submission_is_a_new_version_and_nothing_else_is(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        assert await apply_plan(store, submit("e1")) == 1
        assert await apply_plan(store, submit("e1")) is None  # redelivered
        assert await apply_plan(store, submit("e2")) is None  # identical content
        dearer = plan(flat_amount=4900)
        assert await apply_plan(store, submit("e3", dearer)) == 2
        assert await apply_plan(store, submit("e4", plan("pro", name="Pro"))) == 1

        history = await plan_history(store.db, "starter")
        assert [(v.version, v.plan.flat_amount) for v in history] == [(1, 2900), (2, 4900)]
        assert history[0].submitted_by == "key:ops"
        newest = await plan_version(store.db, "starter")
        assert newest is not None and newest.version == 2 and newest.plan == dearer
        first = await plan_version(store.db, "starter", 1)
        assert first is not None and first.plan == plan()
        assert [(p.code, p.version) for p in await list_plans(store.db)] == [
            ("pro", 1), ("starter", 2)]
        assert await store.audit.count_documents({}) == 0


async def test_a_non_super_or_invalid_plan_is_refused_and_audited(
    common_settings: CommonSettings,
) -> None:
    viewer = Actor(user_id="key:look", role="viewer")
    tenant = Actor(user_id="key:acme", role="tenant")
    charge = {"meter": "computations", "model": "per_unit", "unit_price": "0.01"}
    twice = plan(price_plan={"charges": [charge, charge]})
    async with open_store(common_settings) as store:
        assert await refused(store, submit("v1", actor=viewer)) == "forbidden"
        assert await refused(store, submit("t1", actor=tenant)) == "forbidden"
        assert await refused(store, submit("d1", twice)) == "validation_error"
        assert await plan_version(store.db, "starter") is None


async def test_the_worker_applies_plans_once_and_dead_letters_refusals(
    settings: InvoicerSettings, worker: None,
) -> None:
    key = settings.signing_key()
    first, changed = sign(submit("p1"), key), sign(submit("p2", plan(flat_amount=4900)), key)
    same = sign(submit("p3", plan(flat_amount=4900)), key)
    forbidden = sign(submit("p4", plan(flat_amount=1), Actor(user_id="eve", role="tenant")),
                     key)
    unsigned = submit("p5", plan(flat_amount=2))
    forged = json.loads(encode(sign(submit("p6", plan(flat_amount=3)), key))[0])
    forged["plan"]["flat_amount"] = 1  # lowered after signing
    async with make_broker(settings) as broker:
        for command in (first, first, changed, changed, same, forbidden, unsigned):
            await publish_event(broker, settings, command, TOPIC_TENANT_CONFIG, "plan:starter")
        await broker.publish(json.dumps(forged).encode(), settings.topic(TOPIC_TENANT_CONFIG),
                             key=b"plan:starter", headers={k: v.decode() for k, v in
                                                           headers_for("PlanSubmitted")})
    await eventually(lambda: consumed(settings, TOPIC_TENANT_CONFIG), what="every plan consumed")

    letters = await collect(settings, TOPIC_DEAD_LETTER, lambda r: len(r) >= 3, seconds=60)
    assert sorted(r["reason"] for r in letters) == ["forbidden"] * 3
    async with open_store(settings) as store:
        history = await plan_history(store.db, "starter")
        assert [(v.version, v.plan.flat_amount) for v in history] == [(1, 2900), (2, 4900)]
        audits = {a["_id"]: a for a in await store.audit.find({}).to_list()}
        assert sorted(audits) == ["p4", "p5", "p6"]
        assert "unsigned" in audits["p5"]["why"]["detail"]
        assert "signature" in audits["p6"]["why"]["detail"]
