"""The Stripe fake's own rules, without I/O: idempotency keys, webhook signatures (checked
with the real SDK's verifier), Stripe's test cards, lists and refunds."""

import json
import time

import pytest
import stripe

from services.devstack.stripe_fake.delivery import sign
from services.devstack.stripe_fake.forms import parse_form
from services.devstack.stripe_fake.state import ApiError, FakeStripe

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


def customer_with_intents(fake: FakeStripe, count: int) -> tuple[str, list[str]]:
    """A customer with `count` succeeded PaymentIntents (oldest first), each with metadata
    `invoice_id` inv-N."""
    cid = fake.create_customer({}, None)["id"]
    ids = []
    for n in range(count):
        pi = fake.create_intent({"amount": "100", "currency": "usd", "customer": cid,
                                 "payment_method": "pm_card_visa", "confirm": "true",
                                 "metadata": {"invoice_id": f"inv-{n}"}}, None)
        ids.append(pi["id"])
    return cid, ids


def test_payment_intents_are_listed_per_customer_newest_first_in_pages() -> None:
    fake = FakeStripe()
    cid, ids = customer_with_intents(fake, 3)
    customer_with_intents(fake, 2)  # another customer's intents stay out
    first = fake.list_intents({"customer": cid, "limit": "2"})
    assert (first["object"], first["has_more"], first["url"]) == (
        "list", True, "/v1/payment_intents")
    assert [pi["id"] for pi in first["data"]] == [ids[2], ids[1]]
    rest = fake.list_intents({"customer": cid, "limit": "2",
                              "starting_after": ids[1]})
    assert [pi["id"] for pi in rest["data"]] == [ids[0]] and rest["has_more"] is False
    found = [pi for pi in fake.list_intents({"customer": cid, "limit": "100"})["data"]
             if pi["metadata"]["invoice_id"] == "inv-1"]
    assert [pi["id"] for pi in found] == [ids[1]]
    assert len(fake.list_intents({})["data"]) == 5
    with pytest.raises(ApiError) as bad:
        fake.list_intents({"limit": "101"})
    assert (bad.value.status, bad.value.error["param"]) == (400, "limit")


def test_a_refund_reports_refund_created_and_charge_refunded_and_caps_at_the_charge() -> None:
    fake = FakeStripe()
    _, [pid] = customer_with_intents(fake, 1)
    part = fake.create_refund({"payment_intent": pid, "amount": "40"}, None)
    assert (part["object"], part["amount"], part["status"], part["payment_intent"]) == (
        "refund", 40, "succeeded", pid)
    assert [e["type"] for e in fake.events[-2:]] == ["refund.created", "charge.refunded"]
    charge_obj = fake.events[-1]["data"]["object"]
    assert (charge_obj["amount_refunded"], charge_obj["refunded"]) == (40, False)
    rest = fake.create_refund({"payment_intent": pid}, None)
    assert rest["amount"] == 60
    assert fake.events[-1]["data"]["object"]["refunded"] is True
    assert fake.refund(rest["id"]) == rest
    assert [r["id"] for r in fake.list_refunds({"payment_intent": pid})["data"]] == [
        rest["id"], part["id"]]
    with pytest.raises(ApiError) as too_much:
        fake.create_refund({"payment_intent": pid, "amount": "1"}, None)
    assert too_much.value.status == 400


@pytest.mark.parametrize(("token", "decline_code"), [
    ("pm_card_chargeDeclined", "generic_decline"),
    ("pm_card_visa_chargeDeclined", "generic_decline"),
    ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ("pm_card_visa_chargeDeclinedInsufficientFunds", "insufficient_funds"),
])
def test_a_declining_test_card_is_refused_already_when_attached(
    token: str, decline_code: str
) -> None:
    fake = FakeStripe()
    cid = fake.create_customer({}, None)["id"]
    with pytest.raises(ApiError) as declined:
        fake.attach(token, {"customer": cid}, None)
    assert declined.value.status == 402
    error = declined.value.error
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error", "card_declined", decline_code)
    assert error["message"] and error["doc_url"].endswith("/card-declined")
    assert not [pm for pm in fake.payment_methods.values() if pm["customer"] == cid]
    assert "payment_method.attached" not in [e["type"] for e in fake.events]


def test_pm_card_charge_customer_fail_attaches_and_then_every_charge_is_declined() -> None:
    fake = FakeStripe()
    cid = fake.create_customer({}, None)["id"]
    pm = fake.attach("pm_card_chargeCustomerFail", {"customer": cid}, None)
    assert (pm["customer"], pm["card"]["last4"]) == (cid, "0341")
    for attempt in range(2):
        params = {"amount": "500", "currency": "eur", "customer": cid,
                  "payment_method": pm["id"], "confirm": "true", "off_session": "true"}
        with pytest.raises(ApiError) as declined:
            fake.create_intent(params, f"k{attempt}")
        error = declined.value.error
        assert declined.value.status == 402
        assert (error["type"], error["code"], error["decline_code"]) == (
            "card_error", "card_declined", "generic_decline")
        assert error["payment_intent"]["status"] == "requires_payment_method"
    assert [e["type"] for e in fake.events].count("payment_intent.payment_failed") == 2
