"""The Stripe fake's billing portal sessions, hosted portal page and customer tax ids, driven
over HTTP as Stripe's SDK and a browser would; shapes checked against Stripe's own example
objects (`stripe/fixtures3.json` of the `shared_data` fixture)."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake

pytestmark = pytest.mark.integration
RETURN = "https://portal.example/billing"
CARD = {"expiry": "12 / 34", "cvc": "987", "name": "A. Tenant"}


@pytest.fixture
def client(stripe_fake: StripeFake) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stripe_fake.base_url, timeout=30,
                      headers={"Authorization": f"Bearer {stripe_fake.api_key}"}) as c:
        yield c


def stripes_keys(shared_data: Path, resource: str) -> set[str]:
    examples = json.loads((shared_data / "stripe" / "fixtures3.json").read_text())
    return set(examples["resources"][resource])


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def customer_with_visa(client: httpx.Client) -> tuple[str, str]:
    cus = _ok(client.post("/v1/customers", data={"metadata[tenant_id]": "acme"}))["id"]
    pm = _ok(client.post("/v1/payment_methods/pm_card_visa/attach",
                         data={"customer": cus}))["id"]
    _ok(client.post(f"/v1/customers/{cus}",
                    data={"invoice_settings[default_payment_method]": pm}))
    return str(cus), str(pm)


def portal(client: httpx.Client, cus: str) -> dict[str, Any]:
    return _ok(client.post("/v1/billing_portal/sessions",
                           data={"customer": cus, "return_url": RETURN}))


def test_a_portal_session_has_stripes_shape_and_needs_a_known_customer(
    client: httpx.Client, shared_data: Path
) -> None:
    cus, _ = customer_with_visa(client)
    bps = portal(client, cus)
    assert set(bps) == stripes_keys(shared_data, "billing_portal.session")
    assert (bps["object"], bps["customer"], bps["return_url"], bps["livemode"]) == (
        "billing_portal.session", cus, RETURN, False)
    assert bps["id"].startswith("bps_") and bps["url"].endswith(f"/billing_portal/{bps['id']}")
    missing = client.post("/v1/billing_portal/sessions", data={"customer": "cus_nobody"})
    assert missing.status_code == 404
    assert client.post("/v1/billing_portal/sessions", data={}).status_code == 400


def test_the_portal_page_shows_the_default_card_and_a_new_card_becomes_the_default(
    client: httpx.Client, stripe_fake: StripeFake
) -> None:
    cus, old = customer_with_visa(client)
    url = portal(client, cus)["url"]
    page = httpx.get(url, timeout=30)
    assert page.status_code == 200 and "Visa ending in 4242" in page.text
    for label in ('for="card_number">Card number', 'for="expiry">Expiry (MM / YY)',
                  'for="cvc">CVC', 'for="name">Name on card'):
        assert label in page.text
    before = len(stripe_fake.events())
    done = httpx.post(url, data={"card_number": "5555 5555 5555 4444", **CARD}, timeout=30)
    assert (done.status_code, done.headers["location"]) == (303, RETURN)
    default = _ok(client.get(f"/v1/customers/{cus}"))["invoice_settings"][
        "default_payment_method"]
    assert default != old
    assert _ok(client.get(f"/v1/payment_methods/{default}"))["card"]["last4"] == "4444"
    assert [e["type"] for e in stripe_fake.events()[before:]] == [
        "payment_method.attached", "customer.updated"]
    assert "Mastercard ending in 4444" in httpx.get(url, timeout=30).text


def test_a_declined_card_in_the_portal_keeps_the_default_and_says_why(
    client: httpx.Client
) -> None:
    cus, old = customer_with_visa(client)
    url = portal(client, cus)["url"]
    refused = httpx.post(url, data={"card_number": "4000 0000 0000 0002", **CARD}, timeout=30)
    assert refused.status_code == 402
    assert 'role="alert"' in refused.text and 'aria-invalid="true"' in refused.text
    assert "declined" in refused.text
    assert _ok(client.get(f"/v1/customers/{cus}"))["invoice_settings"][
        "default_payment_method"] == old


def test_an_expired_portal_session_answers_410(
    client: httpx.Client, stripe_fake: StripeFake
) -> None:
    cus, _ = customer_with_visa(client)
    bps = portal(client, cus)
    stripe_fake.server.app.state.stripe.portal_sessions[bps["id"]]["expires_at"] = 0
    assert httpx.get(bps["url"], timeout=30).status_code == 410
    assert httpx.post(bps["url"], data={"card_number": "4242424242424242", **CARD},
                      timeout=30).status_code == 410


def test_customer_tax_ids_have_stripes_shape_and_can_be_listed_and_deleted(
    client: httpx.Client, stripe_fake: StripeFake, shared_data: Path
) -> None:
    cus, _ = customer_with_visa(client)
    txi = _ok(client.post(f"/v1/customers/{cus}/tax_ids",
                          data={"type": "eu_vat", "value": "DE123456789"}))
    assert set(txi) == stripes_keys(shared_data, "tax_id")
    assert (txi["object"], txi["country"], txi["customer"], txi["owner"]["customer"],
            txi["verification"]["status"]) == ("tax_id", "DE", cus, cus, "pending")
    assert stripe_fake.events()[-1]["type"] == "customer.tax_id.created"
    listed = _ok(client.get(f"/v1/customers/{cus}/tax_ids"))
    assert [t["id"] for t in listed["data"]] == [txi["id"]]
    assert client.post(f"/v1/customers/{cus}/tax_ids",
                       data={"type": "xx_nope", "value": "1"}).status_code == 400
    assert _ok(client.delete(f"/v1/customers/{cus}/tax_ids/{txi['id']}"))["deleted"] is True
    assert _ok(client.get(f"/v1/customers/{cus}/tax_ids"))["data"] == []


def test_a_customers_address_is_stripes_address_hash(client: httpx.Client) -> None:
    cus = _ok(client.post("/v1/customers", data={
        "address[line1]": "Hauptstr. 1", "address[country]": "DE"}))
    assert cus["address"] == {"city": None, "country": "DE", "line1": "Hauptstr. 1",
                              "line2": None, "postal_code": None, "state": None}
    updated = _ok(client.post(f"/v1/customers/{cus['id']}", data={"address[city]": "Berlin"}))
    assert updated["address"]["city"] == "Berlin" and updated["address"]["line1"] is None
