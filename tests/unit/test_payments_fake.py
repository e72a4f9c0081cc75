"""The Stripe fake's own rules, without I/O: idempotency keys and webhook signatures (checked
with the real SDK's verifier)."""

import json
import time

import pytest
import stripe

from services.payments.stripe_fake.delivery import sign
from services.payments.stripe_fake.forms import parse_form
from services.payments.stripe_fake.state import ApiError, FakeStripe

pytestmark = pytest.mark.unit
SECRET = "whsec_unit"


def charge(fake: FakeStripe, key: str | None, amount: int = 4900,
           token: str = "pm_card_visa") -> tuple[int, dict[str, object], bool]:
    params = {"amount": str(amount), "currency": "usd", "payment_method": token,
              "confirm": "true", "off_session": "true"}
    return fake.idempotent(key, "POST", "/v1/payment_intents", params,
                           lambda: (200, fake.create_intent(params, key)))


def test_the_same_key_and_parameters_replay_the_first_response() -> None:
    fake = FakeStripe()
    status, first, replayed = charge(fake, "k1")
    again_status, again, again_replayed = charge(fake, "k1")
    assert (status, replayed) == (200, False)
    assert (again_status, again_replayed) == (200, True)
    assert again["id"] == first["id"] and len(fake.intents) == 1


def test_the_same_key_with_other_parameters_is_an_idempotency_error() -> None:
    fake = FakeStripe()
    charge(fake, "k1")
    with pytest.raises(ApiError) as refused:
        charge(fake, "k1", amount=5000)
    assert refused.value.status == 400 and refused.value.error["type"] == "idempotency_error"
    assert len(fake.intents) == 1


def test_a_declined_charge_is_replayed_as_the_same_402() -> None:
    fake = FakeStripe()
    status, body, _ = charge(fake, "k2", token="pm_card_chargeDeclinedInsufficientFunds")
    assert status == 402
    error = body["error"]
    assert isinstance(error, dict)
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error", "card_declined", "insufficient_funds")
    assert error["payment_intent"]["status"] == "requires_payment_method"
    assert charge(fake, "k2", token="pm_card_chargeDeclinedInsufficientFunds")[:2] == (402, body)
    assert [e["type"] for e in fake.events][-1] == "payment_intent.payment_failed"


def test_without_a_key_every_request_creates_a_new_object() -> None:
    fake = FakeStripe()
    charge(fake, None)
    charge(fake, None)
    assert len(fake.intents) == 2


def test_the_fake_signs_webhooks_as_the_stripe_sdk_verifies_them() -> None:
    payload = json.dumps({"id": "evt_1", "object": "event", "type": "x", "data": {}})
    header = sign(payload.encode(), SECRET)
    event = stripe.Webhook.construct_event(payload, header, SECRET, tolerance=300)
    assert event.id == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, "whsec_other", tolerance=300)
    stale = sign(payload.encode(), SECRET, int(time.time()) - 301)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, stale, SECRET, tolerance=300)


def test_bracketed_form_parameters_become_nested_values() -> None:
    parsed = parse_form(
        "metadata[tenant_id]=acme&invoice_settings[default_payment_method]=pm_1"
        "&enabled_events[0]=*&enabled_events[1]=charge.failed&amount=10"
    )
    assert parsed == {"metadata": {"tenant_id": "acme"},
                      "invoice_settings": {"default_payment_method": "pm_1"},
                      "enabled_events": ["*", "charge.failed"], "amount": "10"}
