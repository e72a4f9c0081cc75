"""Rules of the operator's credit and coupon commands without I/O: roles, code strength,
currency, catalog conflicts, exhausted coupons, and which coupon prices an invoice."""

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts import Actor, CouponCreated, CouponRedeemed, CreditGranted
from services.common.errors import Forbidden, InvalidMessage, PermanentError
from services.invoicer.ledger import coupon_in_effect
from services.invoicer.operator_rules import (
    authorize_operator,
    check_currency,
    check_known_tenant,
    check_redeemable,
    same_coupon,
    validate_coupon,
)
from tests.integration.test_invoicer_support import config

pytestmark = pytest.mark.unit
SUPER = Actor(user_id="key:ops", role="super")
TENANT = Actor(user_id="key:acme", role="tenant")
VIEWER = Actor(user_id="key:look", role="viewer")
T0 = datetime(2013, 7, 15, tzinfo=UTC)


def credit(actor: Actor = SUPER) -> CreditGranted:
    return CreditGranted(event_id="e1", tenant_id="acme", credit_id="e1", amount=500,
                         currency="USD", reason="goodwill", actor=actor)


def created(code: str = "Welcome5xQ", actor: Actor = SUPER, **extra: Any) -> CouponCreated:
    return CouponCreated(event_id="e2", code=code, amount_off=300, currency="USD",
                         duration="once", actor=actor, **extra)


def redeemed(actor: Actor) -> CouponRedeemed:
    return CouponRedeemed(event_id="e3", tenant_id="acme", code="Welcome5xQ", actor=actor)


def catalog(**fields: Any) -> dict[str, Any]:
    return {"_id": "Welcome5xQ", "amount_off": 300, "currency": "USD", "duration": "once",
            "duration_in_periods": None, "max_redemptions": None, "redeemed_by": [], **fields}


def test_only_super_grants_credits_and_creates_coupons_a_tenant_may_redeem() -> None:
    authorize_operator(credit())
    authorize_operator(created())
    authorize_operator(redeemed(SUPER))
    authorize_operator(redeemed(TENANT))
    for command in (credit(TENANT), created(actor=TENANT), redeemed(VIEWER)):
        with pytest.raises(Forbidden):
            authorize_operator(command)


def test_a_catalog_code_must_be_hard_to_guess() -> None:
    validate_coupon(created("Welcome5xQ"))
    with pytest.raises(InvalidMessage, match="guess"):
        validate_coupon(created("aaaaaaaa"))


def test_unknown_tenants_and_other_currencies_are_refused() -> None:
    with pytest.raises(PermanentError) as unknown:
        check_known_tenant(None, "ghost")
    assert unknown.value.reason == "unknown_tenant"
    check_currency("USD", "USD", "credit")
    with pytest.raises(PermanentError) as other:
        check_currency("USD", "EUR", "credit")
    assert other.value.reason == "currency_mismatch"


def test_creating_a_code_again_is_a_no_op_only_with_the_same_fields() -> None:
    same_coupon(catalog(), {"amount_off": 300, "currency": "USD", "duration": "once",
                            "duration_in_periods": None, "max_redemptions": None})
    with pytest.raises(PermanentError, match="amount_off") as exc:
        same_coupon(catalog(), {"amount_off": 400, "currency": "USD", "duration": "once",
                                "duration_in_periods": None, "max_redemptions": None})
    assert exc.value.reason == "coupon_exists"


def test_redemption_needs_a_known_code_the_currency_and_a_free_redemption() -> None:
    def reason(coupon: dict[str, Any] | None, tenant: str = "acme") -> str:
        with pytest.raises(PermanentError) as exc:
            check_redeemable(coupon, "Welcome5xQ", tenant, "USD")
        return exc.value.reason

    assert reason(None) == "coupon_unknown"
    assert reason(catalog(currency="EUR")) == "currency_mismatch"
    assert reason(catalog(max_redemptions=1, redeemed_by=["globex"])) == "coupon_exhausted"
    full = catalog(max_redemptions=1, redeemed_by=["acme"])
    assert check_redeemable(full, "Welcome5xQ", "acme", "USD") is full  # its own redemption


def test_a_redeemed_coupon_replaces_the_configured_one_for_invoices_issued_after_it() -> None:
    cfg = config("acme", coupon={"code": "Config5xQ", "amount_off": 100, "duration": "forever"})
    tenant = {"redeemed_coupon": {"code": "Welcome5xQ", "amount_off": 300, "currency": "USD",
                                  "duration": "repeating", "duration_in_periods": 2,
                                  "max_redemptions": 5, "redeemed_at": T0}}
    before = coupon_in_effect(cfg, tenant, T0)
    after = coupon_in_effect(cfg, tenant, datetime(2013, 8, 1, tzinfo=UTC))
    assert before.coupon is not None and before.coupon.code == "Config5xQ"
    assert after.coupon is not None and after.coupon.model_dump() == {
        "code": "Welcome5xQ", "amount_off": 300, "duration": "repeating",
        "duration_in_periods": 2, "max_redemptions": 5}
    assert coupon_in_effect(cfg, {}, T0) is cfg
    euro = config("acme", settings={"currency": "EUR"})
    assert coupon_in_effect(euro, tenant, datetime(2013, 8, 1, tzinfo=UTC)) is euro
