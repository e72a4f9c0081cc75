"""The Stripe fake's Checkout Sessions and hosted page, driven over HTTP as Stripe's SDK and a
browser would: create a session, GET its page, POST a test card, follow the 303."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake

pytestmark = pytest.mark.integration
RETURN = "https://portal.example/return?session={CHECKOUT_SESSION_ID}"
CANCEL = "https://portal.example/cancelled"


@pytest.fixture
def client(stripe_fake: StripeFake) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stripe_fake.base_url, timeout=30,
                      headers={"Authorization": f"Bearer {stripe_fake.api_key}"}) as c:
        yield c


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def customer(client: httpx.Client) -> str:
    return str(_ok(client.post("/v1/customers", data={"metadata[tenant_id]": "acme"}))["id"])


def payment_session(client: httpx.Client, cus: str | None = None, **extra: str) -> dict[str, Any]:
    data = {"mode": "payment", "success_url": RETURN, "cancel_url": CANCEL,
            "line_items[0][price_data][currency]": "usd",
            "line_items[0][price_data][unit_amount]": "4900",
            "line_items[0][price_data][product_data][name]": "Invoice INV-2013-0001",
            "line_items[0][quantity]": "1",
            "payment_intent_data[metadata][invoice_id]": "inv-acme-1",
            "payment_intent_data[metadata][tenant_id]": "acme",
            "metadata[invoice_id]": "inv-acme-1",
            **({"customer": cus} if cus else {}), **extra}
    return _ok(client.post("/v1/checkout/sessions", data=data))


def pay(session: dict[str, Any], number: str, **fields: str) -> httpx.Response:
    form = {"card_number": number, "expiry": "12 / 34", "cvc": "987", "name": "A. Tenant",
            **fields}
    return httpx.post(session["url"], data=form, timeout=30)


def types(fake: StripeFake) -> list[str]:
    return [e["type"] for e in fake.events() if not e["type"].startswith("customer.")]


def test_a_payment_session_is_paid_on_its_hosted_page_with_4242(
    client: httpx.Client, stripe_fake: StripeFake
) -> None:
    cus = customer(client)
    session = payment_session(client, cus)
    assert (session["status"], session["payment_status"], session["amount_total"]) == (
        "open", "unpaid", 4900)
    assert session["url"] == f"{stripe_fake.base_url}/checkout/{session['id']}"
    page = httpx.get(session["url"], timeout=30)
    assert page.status_code == 200
    for label in ('for="card_number">Card number', 'for="expiry">Expiry (MM / YY)',
                  'for="cvc">CVC', 'for="name">Name on card', "Pay $49.00",
                  f'href="{CANCEL}">Cancel'):
        assert label in page.text

    done = pay(session, "4242 4242 4242 4242")
    assert done.status_code == 303
    assert done.headers["location"] == RETURN.replace("{CHECKOUT_SESSION_ID}", session["id"])
    after = _ok(client.get(f"/v1/checkout/sessions/{session['id']}"))
    assert (after["status"], after["payment_status"]) == ("complete", "paid")
    pi = _ok(client.get(f"/v1/payment_intents/{after['payment_intent']}"))
    assert (pi["status"], pi["amount"], pi["currency"], pi["customer"]) == (
        "succeeded", 4900, "usd", cus)
    assert pi["metadata"] == {"invoice_id": "inv-acme-1", "tenant_id": "acme"}
    assert types(stripe_fake) == ["payment_intent.created", "charge.succeeded",
                                  "payment_intent.succeeded", "checkout.session.completed"]
    listed = _ok(client.get("/v1/checkout/sessions",
                            params={"payment_intent": pi["id"]}))["data"]
    assert [s["id"] for s in listed] == [session["id"]]
    closed = httpx.get(session["url"], timeout=30)
    assert "This checkout session is complete." in closed.text
    assert pay(session, "4242424242424242").status_code == 410


@pytest.mark.parametrize(("number", "message"), [
    ("4000 0000 0000 0002", "Your card was declined."),
    ("4000000000009995", "Your card has insufficient funds."),
    ("1234 5678 9012 3456", "Your card number is incorrect."),
])
def test_a_refused_card_rerenders_the_form_and_the_session_stays_open(
    client: httpx.Client, stripe_fake: StripeFake, number: str, message: str
) -> None:
    session = payment_session(client, customer(client))
    refused = pay(session, number)
    assert refused.status_code == 402
    assert message in refused.text and 'role="alert"' in refused.text
    assert 'aria-invalid="true"' in refused.text and "987" not in refused.text  # no CVC echo
    assert _ok(client.get(f"/v1/checkout/sessions/{session['id']}"))["status"] == "open"
    # the next card pays the same PaymentIntent (one per session)
    assert pay(session, "5555 5555 5555 4444").status_code == 303
    after = _ok(client.get(f"/v1/checkout/sessions/{session['id']}"))
    assert after["payment_status"] == "paid"
    intents = stripe_fake.intents()
    assert len(intents) == 1 and intents[0]["status"] == "succeeded"


def test_an_incomplete_expiry_is_refused_before_the_card_is_tried(
    client: httpx.Client, stripe_fake: StripeFake
) -> None:
    session = payment_session(client)
    refused = pay(session, "4242424242424242", expiry="13/40")
    assert refused.status_code == 402
    assert "Your card&#x27;s expiration date is incomplete." in refused.text
    assert stripe_fake.intents() == []


def test_a_setup_session_attaches_the_card_to_the_customer(
    client: httpx.Client, stripe_fake: StripeFake
) -> None:
    cus = customer(client)
    session = _ok(client.post("/v1/checkout/sessions", data={
        "mode": "setup", "currency": "usd", "customer": cus, "success_url": RETURN,
        "cancel_url": CANCEL, "metadata[tenant_id]": "acme"}))
    assert session["payment_status"] == "no_payment_required"
    assert "Save card" in httpx.get(session["url"], timeout=30).text
    assert pay(session, "4000 0000 0000 0002").status_code == 402  # declined on attaching
    assert pay(session, "5555555555554444").status_code == 303
    after = _ok(client.get(f"/v1/checkout/sessions/{session['id']}"))
    seti = _ok(client.get(f"/v1/setup_intents/{after['setup_intent']}"))
    assert (seti["status"], seti["customer"]) == ("succeeded", cus)
    pm = _ok(client.get(f"/v1/payment_methods/{seti['payment_method']}"))
    assert (pm["customer"], pm["card"]["brand"], pm["card"]["last4"]) == (
        cus, "mastercard", "4444")
    assert types(stripe_fake)[-3:] == ["setup_intent.created", "setup_intent.succeeded",
                                       "checkout.session.completed"]


def test_an_expired_session_cannot_be_paid(
    client: httpx.Client, stripe_fake: StripeFake
) -> None:
    session = payment_session(client)
    expired = _ok(client.post(f"/v1/checkout/sessions/{session['id']}/expire"))
    assert (expired["status"], expired["url"]) == ("expired", None)
    again = client.post(f"/v1/checkout/sessions/{session['id']}/expire")
    assert again.status_code == 400
    assert "This checkout session has expired." in httpx.get(session["url"], timeout=30).text
    assert pay(session, "4242424242424242").status_code == 410
    assert types(stripe_fake) == ["checkout.session.expired"]


@pytest.mark.parametrize(("data", "param"), [
    ({"mode": "payment", "line_items[0][price_data][currency]": "usd",
      "line_items[0][price_data][unit_amount]": "100"}, "success_url"),
    ({"mode": "payment", "success_url": RETURN}, "line_items"),
    ({"mode": "setup", "success_url": RETURN, "expires_at": "1"}, "expires_at"),
])
def test_invalid_sessions_are_refused_as_stripe_refuses_them(
    client: httpx.Client, data: dict[str, str], param: str
) -> None:
    response = client.post("/v1/checkout/sessions", data=data)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
