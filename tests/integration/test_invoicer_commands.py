"""The operator's credit and coupon commands against MongoDB (and, through the worker, Kafka):
applied once per event id, refusals audited, a granted credit and a redeemed coupon reduce
the next invoices, and a credit granted while an invoice is being issued is never lost."""

import json
from datetime import datetime
from typing import Any

import pytest

from contracts import (
    TOPIC_DEAD_LETTER,
    TOPIC_TENANT_CONFIG,
    Actor,
    CouponCreated,
    CouponRedeemed,
    CreditGranted,
)
from services.common.codec import encode, headers_for
from services.common.errors import PermanentError
from services.common.settings import CommonSettings
from services.common.signing import sign
from services.common.worker import make_broker, publish_event
from services.invoicer.adapters.catalog import COUPONS
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.cycle import read_and_price, tenant_periods
from services.invoicer.domain import invoice_id
from services.invoicer.handlers import apply_config
from services.invoicer.operator_handlers import apply_operator
from services.invoicer.reports import list_invoices
from services.invoicer.schedule import run_cycle
from services.invoicer.settings import InvoicerSettings
from tests.integration.test_invoicer_support import (  # the settings and worker fixtures
    config,
    open_store,
    utc,
    worker_fixture,  # noqa: F401
    worker_settings_fixture,  # noqa: F401
)
from tests.integration.test_invoicer_worker import collect, consumed
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
SUPER = Actor(user_id="key:ops", role="super")
CODE = "Welcome5xQ"
CREDIT_AT, REDEEMED_AT = utc(2013, 7, 15), utc(2013, 8, 15)


def grant(event_id: str, tenant: str = "acme", at: datetime = CREDIT_AT, *,
          amount: int = 500, currency: str = "USD") -> CreditGranted:
    return CreditGranted(event_id=event_id, occurred_at=at, tenant_id=tenant,
                         credit_id=event_id, amount=amount, currency=currency,
                         reason="goodwill after the outage", actor=SUPER)


def create(event_id: str, code: str = CODE, **fields: Any) -> CouponCreated:
    body: dict[str, Any] = {"amount_off": 300, "currency": "USD", "duration": "once", **fields}
    return CouponCreated(event_id=event_id, occurred_at=utc(2013, 7, 1), code=code,
                         actor=SUPER, **body)


def redeem(event_id: str, tenant: str = "acme", code: str = CODE,
           at: datetime = REDEEMED_AT) -> CouponRedeemed:
    return CouponRedeemed(event_id=event_id, occurred_at=at, tenant_id=tenant, code=code,
                          actor=Actor(user_id=f"key:{tenant}", role="tenant"))


async def refused(store: InvoicerStore, command: Any) -> str:
    """The reason `apply_operator` refuses `command` with; its audit record must say so."""
    with pytest.raises(PermanentError) as exc:
        await apply_operator(store, command)
    audit = await store.audit.find_one({"_id": command.event_id})
    assert audit is not None and audit["why"]["reason"] == exc.value.reason
    assert audit["what"]["command"] == type(command).__name__
    return exc.value.reason


async def test_a_credit_and_a_redeemed_coupon_reduce_the_next_invoices_once(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await apply_config(store, config("acme"))
        assert await apply_operator(store, grant("c1")) == "credit_granted"
        assert await apply_operator(store, grant("c1")) is None  # redelivered
        assert await apply_operator(store, create("k1")) == "coupon_created"
        assert await apply_operator(store, create("k1")) is None
        assert await apply_operator(store, create("k2")) is None  # same code, same fields
        assert await apply_operator(store, redeem("r1")) == "coupon_redeemed"
        assert await apply_operator(store, redeem("r1")) is None
        assert await apply_operator(store, redeem("r2")) is None  # same code, same tenant

        await run_cycle(store, utc(2013, 10, 1))
        invoices = [(d["issue_date"], d["amount"], [li["kind"] for li in d["line_items"]])
                    for d in await list_invoices(store)]
        assert invoices == [
            ("2013-07-01", 1000, ["flat_fee", "usage"]),            # before the credit
            ("2013-08-01", 500, ["flat_fee", "usage", "credit"]),   # the 5.00 credit
            ("2013-09-01", 700, ["flat_fee", "usage", "coupon"]),   # redeemed 15 Aug, once
            ("2013-10-01", 1000, ["flat_fee", "usage"]),
        ]
        tenant = await store.tenant("acme")
        assert tenant is not None and len(tenant["credit_balance"]) == 1
        coupon = await store.db[COUPONS].find_one({"_id": CODE})
        assert coupon is not None and coupon["redemptions"] == 1
        assert coupon["redeemed_by"] == ["acme"]


async def test_refused_commands_are_audited_with_their_reason(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await apply_config(store, config("acme"))
        await apply_config(store, config("globex"))
        await apply_config(store, config("emea", settings={"currency": "EUR"}))
        await apply_operator(store, create("k1", max_redemptions=1))
        await apply_operator(store, create("k2", code="EuroDeal9x", currency="EUR"))

        assert await refused(store, grant("c1", tenant="ghost")) == "unknown_tenant"
        assert await refused(store, grant("c2", currency="EUR")) == "currency_mismatch"
        assert await refused(store, create("k3", amount_off=999)) == "coupon_exists"
        assert await refused(store, create("k4", code="aaaaaaaaa")) == "validation_error"
        assert await refused(store, grant("c3").model_copy(
            update={"actor": Actor(user_id="key:acme", role="tenant")})) == "forbidden"
        assert await refused(store, redeem("r1", code="NoSuch5xQ")) == "coupon_unknown"
        assert await refused(store, redeem("r2", code="EuroDeal9x")) == "currency_mismatch"
        assert await refused(store, redeem("r3", tenant="ghost")) == "unknown_tenant"
        assert await apply_operator(store, redeem("r4", tenant="globex")) == "coupon_redeemed"
        assert await refused(store, redeem("r5")) == "coupon_exhausted"

        assert await store.audit.count_documents({}) == 9
        acme = await store.tenant("acme")
        assert acme is not None and "redeemed_coupon" not in acme
        assert not acme.get("credit_balance") and acme["ledger_rev"] == 0


async def test_a_credit_granted_while_an_invoice_is_issued_is_not_lost(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store, open_store(common_settings) as other:
        await apply_config(store, config("acme"))
        period = tenant_periods(config("acme"), utc(2013, 7, 1))[0]
        inv_id = invoice_id("acme", period.start_date)
        attempts: list[int] = []

        async def read(session: Any) -> Any:
            draft = await read_and_price(store, session, inv_id, "acme", period)
            attempts.append(draft.ledger.rev)
            if len(attempts) == 1:  # the credit commits after this attempt read the ledger
                await apply_operator(other, grant("c1", at=utc(2013, 6, 20)))
            return draft

        number = await store.issue(inv_id, "acme", 2013, read)

        assert attempts == [0, 1]  # the first attempt aborted and priced again
        doc = await store.invoice(inv_id)
        assert doc is not None and doc["invoice_number"] == number and doc["amount"] == 500
        tenant = await store.tenant("acme")
        assert tenant is not None and tenant["ledger_rev"] == 2
        assert [c["credit_id"] for c in tenant["credit_balance"]] == ["c1"]
        assert tenant["credits_used"] == [{"credit_id": "c1", "used": 500}]


async def commands_consumed(settings: InvoicerSettings) -> bool:
    """Whether the invoicer committed past every record of the command topic."""
    return await consumed(settings, TOPIC_TENANT_CONFIG)


async def test_the_worker_applies_each_command_once_under_redelivery(
    settings: InvoicerSettings, worker: None,
) -> None:
    key = settings.signing_key()
    async with open_store(settings) as store:
        await apply_config(store, config("acme"))
    created, credit, redeemed = sign(create("k1"), key), sign(grant("c1"), key), sign(
        redeem("r1"), key)
    async with make_broker(settings) as broker, open_store(settings) as store:
        for _ in range(2):  # each command delivered twice
            await publish_event(broker, settings, created, TOPIC_TENANT_CONFIG, f"coupon:{CODE}")
        # the coupon's key and the tenant's may be on other partitions: redeem once it exists
        await eventually(lambda: store.db[COUPONS].find_one({"_id": CODE}), what="coupon")
        for command in (credit, redeemed, credit, redeemed):
            await publish_event(broker, settings, command, TOPIC_TENANT_CONFIG, "acme")
    await eventually(lambda: commands_consumed(settings), what="every command consumed")

    async with open_store(settings) as store:
        tenant = await store.tenant("acme")
        assert tenant is not None and tenant["ledger_rev"] == 2  # one credit, one redemption
        assert [c["credit_id"] for c in tenant["credit_balance"]] == ["c1"]
        assert tenant["redeemed_coupon"]["code"] == CODE
        coupon = await store.db[COUPONS].find_one({"_id": CODE})
        assert coupon is not None and coupon["redemptions"] == 1
        assert await store.audit.count_documents({}) == 0


async def test_forged_and_unsigned_credits_are_refused_audited_and_dead_lettered(
    settings: InvoicerSettings, worker: None,
) -> None:
    key = settings.signing_key()
    async with open_store(settings) as store:
        await apply_config(store, config("acme"))
    unsigned = grant("unsigned")
    forged = json.loads(encode(sign(grant("forged"), key))[0])
    forged["amount"] = 500_000  # raised after signing
    async with make_broker(settings) as broker:
        await publish_event(broker, settings, unsigned, TOPIC_TENANT_CONFIG, "acme")
        await broker.publish(json.dumps(forged).encode(), settings.topic(TOPIC_TENANT_CONFIG),
                             key=b"acme", headers={k: v.decode() for k, v in
                                                   headers_for("CreditGranted")})

    letters = await collect(settings, TOPIC_DEAD_LETTER, lambda r: len(r) >= 2, seconds=60)
    assert sorted(r["reason"] for r in letters) == ["forbidden", "forbidden"]
    async with open_store(settings) as store:
        audits = {a["_id"]: a for a in await store.audit.find({}).to_list()}
        assert sorted(audits) == ["forged", "unsigned"]
        assert "unsigned" in audits["unsigned"]["why"]["detail"]
        assert "signature" in audits["forged"]["why"]["detail"]
        assert all(a["what"]["command"] == "CreditGranted" for a in audits.values())
        tenant = await store.tenant("acme")
        assert tenant is not None and not tenant.get("credit_balance")
