"""Stripe's customer billing portal and customer tax ids in the fake.

- `POST /v1/billing_portal/sessions` (`customer` required, `return_url`): a
  `billing_portal.session` (https://docs.stripe.com/api/customer_portal/sessions/object) whose
  `url` is the fake's hosted page `GET|POST /billing_portal/{id}` on the origin it was created
  through. Stripe's portal sessions are short-lived (5 minutes; a used link opens the portal
  for the session's lifetime); the fake answers 410 after `expires_at`.
- The hosted page shows the customer's default card and takes a new one (Stripe's test card
  numbers, the same labelled form as the hosted Checkout page): the card is attached
  (`payment_method.attached`) and becomes `invoice_settings.default_payment_method`
  (`customer.updated`), then the browser is sent (303) to `return_url`.
- `POST /v1/customers/{id}/tax_ids` (`type`, `value`) and `GET /v1/customers/{id}/tax_ids`:
  `tax_id` objects (https://docs.stripe.com/api/tax_ids/object), verification `pending`;
  `customer.tax_id.created` is sent. `DELETE /v1/customers/{id}/tax_ids/{tid}` removes one.
"""

import html
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from services.devstack.stripe_fake import objects as o
from services.devstack.stripe_fake.checkout import CardRefused, token_for
from services.devstack.stripe_fake.errors import ApiError, invalid, missing
from services.devstack.stripe_fake.hosted import card_fields, invalid_details, page
from services.devstack.stripe_fake.listing import page as list_page
from services.devstack.stripe_fake.state import Body, FakeStripe

PORTAL_LIFETIME = 5 * 60
TAX_ID_TYPES = ("eu_vat", "gb_vat", "us_ein", "ch_vat", "no_vat", "au_abn", "ca_bn")


def create_session(fake: FakeStripe, params: Body, origin: str) -> Body:
    """`POST /v1/billing_portal/sessions`."""
    if not params.get("customer"):
        raise invalid("Missing required param: customer.", "customer")
    fake.customer(params["customer"])
    created = o.now()
    bps = {
        "id": o.new_id("bps"), "object": "billing_portal.session",
        "configuration": "bpc_fake_default", "created": created,
        "customer": params["customer"], "customer_account": None, "flow": None,
        "livemode": False, "locale": params.get("locale"),
        "on_behalf_of": params.get("on_behalf_of"), "return_url": params.get("return_url"),
        "url": "", "expires_at": created + PORTAL_LIFETIME,
    }
    bps["url"] = f"{origin}/billing_portal/{bps['id']}"
    fake.portal_sessions[bps["id"]] = bps
    return {k: v for k, v in bps.items() if k != "expires_at"}


def create_tax_id(fake: FakeStripe, cid: str, params: Body, key: str | None) -> Body:
    """`POST /v1/customers/{id}/tax_ids`."""
    cus = fake.customer(cid)
    if params.get("type") not in TAX_ID_TYPES:
        raise invalid("Invalid value for type.", "type")
    if not params.get("value"):
        raise invalid("Missing required param: value.", "value")
    country = str(params["value"])[:2].upper() if params["type"].endswith("_vat") else None
    txi = {
        "id": o.new_id("txi"), "object": "tax_id", "country": country, "created": o.now(),
        "customer": cid, "customer_account": None, "livemode": False,
        "owner": {"customer": cus["id"], "type": "customer", "customer_account": None},
        "type": params["type"], "value": params["value"],
        "verification": {"status": "pending", "verified_address": None,
                         "verified_name": None},
    }
    fake.tax_ids[txi["id"]] = txi
    fake.emit("customer.tax_id.created", txi, key)
    return txi


def list_tax_ids(fake: FakeStripe, cid: str, query: dict[str, str]) -> Body:
    """`GET /v1/customers/{id}/tax_ids`, newest first."""
    fake.customer(cid)
    found = [t for t in reversed(fake.tax_ids.values()) if t["customer"] == cid]
    return list_page(found, query, f"/v1/customers/{cid}/tax_ids")


def delete_tax_id(fake: FakeStripe, cid: str, tid: str) -> Body:
    """`DELETE /v1/customers/{id}/tax_ids/{tid}`: Stripe's deleted-object answer."""
    found = fake.tax_ids.get(tid)
    if found is None or found["customer"] != cid:
        raise missing("tax_id", tid)
    del fake.tax_ids[tid]
    fake.emit("customer.tax_id.deleted", found, None)
    return {"id": tid, "object": "tax_id", "deleted": True}


def change_default_card(fake: FakeStripe, cid: str, card_number: str) -> Body:
    """Attach a test card to customer `cid` and make it the default (the portal's "Add
    card"); raises `CardRefused` with Stripe's message."""
    pm = fake.payment_method(token_for(card_number))
    try:
        fake.attach(pm["id"], {"customer": cid}, None)
    except ApiError as exc:
        raise CardRefused(str(exc.error.get("message") or "Your card was declined.")) from None
    return fake.update_customer(cid, {"invoice_settings": {"default_payment_method": pm["id"]}},
                                None)


def _current_card(fake: FakeStripe, cid: str) -> str:
    pid = fake.customer(cid)["invoice_settings"].get("default_payment_method")
    card = fake.payment_methods.get(pid or "", {}).get("card")
    if not card:
        return "No card on file."
    return f"Default card: {card['brand'].title()} ending in {card['last4']}"


def _portal_page(fake: FakeStripe, bps: Body, error: tuple[str, str] | None = None,
                 values: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
    alert = f'<p id="card-error" class="error" role="alert">{html.escape(error[1])}</p>' \
        if error else ""
    back = (f'<p><a href="{html.escape(bps["return_url"])}">Return without changes</a></p>'
            if bps.get("return_url") else "")
    body = (f"<h1>Payment method</h1><p id=\"current-card\">"
            f"{html.escape(_current_card(fake, bps['customer']))}</p>"
            f"<h2>Add a new card</h2>"
            f'<form method="post" action="/billing_portal/{html.escape(bps["id"])}">{alert}'
            + card_fields(error, values or {})
            + f'<button type="submit">Add card</button></form>{back}')
    return page("Billing portal", body, status)


def portal_routes(fake: FakeStripe) -> list[Route]:
    """The hosted billing portal page's routes for the fake's app."""

    def lookup(request: Request) -> Body | None:
        found = fake.portal_sessions.get(request.path_params["id"])
        return found if found is not None and found["expires_at"] > o.now() else None

    async def show(request: Request) -> Response:
        found = lookup(request)
        if found is None:
            return page("Session expired", "<h1>This portal session has expired</h1>", 410)
        return _portal_page(fake, found)

    async def submit(request: Request) -> Response:
        found = lookup(request)
        if found is None:
            return page("Session expired", "<h1>This portal session has expired</h1>", 410)
        values = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        problem = invalid_details(values)
        if problem is None:
            try:
                change_default_card(fake, found["customer"], values.get("card_number", ""))
            except CardRefused as exc:
                problem = ("card_number", str(exc))
            else:
                return RedirectResponse(found["return_url"] or f"/billing_portal/{found['id']}",
                                        status_code=303)
        values.pop("cvc", None)  # never echoed back
        return _portal_page(fake, found, problem, values, 402)

    return [Route("/billing_portal/{id}", show, methods=["GET"]),
            Route("/billing_portal/{id}", submit, methods=["POST"])]
