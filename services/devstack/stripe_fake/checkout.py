"""Stripe Checkout in the fake: Checkout Sessions in `payment` and `setup` mode, the
SetupIntents setup mode creates, and completing a session with a test card number from the
hosted page (`hosted.py`). Shapes follow Stripe's API reference
(https://docs.stripe.com/api/checkout/sessions/object, .../setup_intents/object); what the
fake does and leaves out: docs/stripe-fake.md, "Checkout".

- A session is `open` until it is completed (`complete`) or expired (`expired`): by
  `POST /v1/checkout/sessions/{id}/expire` or once `expires_at` has passed (default 24 h after
  creation; Stripe accepts 30 minutes to 24 hours).
- Payment mode: the first card submitted creates the session's PaymentIntent (amount and
  currency of the line items, the session's customer, `payment_intent_data[metadata]`) and
  confirms it; a declined card leaves the intent `requires_payment_method` and the session
  open (the next card confirms the same intent). Success sends `charge.succeeded`,
  `payment_intent.succeeded`, then `checkout.session.completed`.
- Setup mode: the card is attached to the session's customer and a succeeded SetupIntent is
  created (`setup_intent.created`, `setup_intent.succeeded`, `checkout.session.completed`).
"""

import re
from typing import Any

from services.devstack.stripe_fake import objects as o
from services.devstack.stripe_fake.errors import ApiError, invalid, missing
from services.devstack.stripe_fake.listing import page
from services.devstack.stripe_fake.state import FakeStripe

Body = dict[str, Any]
DEFAULT_LIFETIME = 24 * 3600
MIN_LIFETIME = 30 * 60
#: Stripe's test card numbers (https://docs.stripe.com/testing) -> the fake's test tokens
CARD_NUMBERS = {
    "4242424242424242": "pm_card_visa",
    "5555555555554444": "pm_card_mastercard",
    "4000000000000002": "pm_card_chargeDeclined",
    "4000000000009995": "pm_card_chargeDeclinedInsufficientFunds",
}


class CardRefused(Exception):
    """The hosted page cannot complete the session with this card: Stripe's message."""


def _int(params: Body, name: str, default: int | None = None) -> int:
    raw = params.get(name, default)
    try:
        return int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise invalid(f"Invalid integer: {name}.", name) from None


def _line_items(params: Body) -> tuple[int, str, list[Body]]:
    """(total in minor units, currency, items with `name`, `unit_amount`, `quantity`)."""
    items = params.get("line_items") or []
    if not isinstance(items, list) or not items:
        raise invalid("You must provide at least one line item in payment mode.", "line_items")
    total, currency, found = 0, "", []
    for n, item in enumerate(items):
        data = item.get("price_data") or {}
        if not data.get("currency"):
            raise invalid("Missing required param: line_items[0][price_data][currency].",
                          f"line_items[{n}][price_data][currency]")
        unit = _int(data, "unit_amount")
        quantity = _int(item, "quantity", 1)
        if unit < 0 or quantity < 1:
            raise invalid("This value must be greater than or equal to 1.",
                          f"line_items[{n}][quantity]")
        if currency and data["currency"].lower() != currency:
            raise invalid("All line items must use the same currency.", "line_items")
        currency = data["currency"].lower()
        name = (data.get("product_data") or {}).get("name") or "Item"
        found.append({"name": name, "unit_amount": unit, "quantity": quantity})
        total += unit * quantity
    if total < 1:
        raise invalid("The Checkout Session's total amount due must be greater than zero.",
                      "line_items")
    return total, currency, found


def create_session(fake: FakeStripe, params: Body, key: str | None, origin: str) -> Body:
    """`POST /v1/checkout/sessions`; `url` is the hosted page on the fake's `origin`."""
    mode = params.get("mode")
    if mode not in ("payment", "setup"):
        raise invalid("Invalid mode: must be one of payment, setup or subscription.", "mode")
    if not params.get("success_url"):
        raise invalid("Missing required param: success_url.", "success_url")
    if params.get("customer"):
        fake.customer(params["customer"])
    created = o.now()
    expires_at = _int(params, "expires_at", created + DEFAULT_LIFETIME)
    if not created + MIN_LIFETIME <= expires_at <= created + DEFAULT_LIFETIME:
        raise invalid("The `expires_at` timestamp must be between 30 minutes and 24 hours "
                      "from Checkout Session creation.", "expires_at")
    items: list[Body] = []
    currency: str | None
    if mode == "payment":
        total, currency, items = _line_items(params)
    else:
        total, currency = 0, str(params.get("currency") or "").lower() or None
    sid = o.new_id("cs_test")
    session = {
        "id": sid, "object": "checkout.session", "amount_subtotal": total,
        "amount_total": total, "cancel_url": params.get("cancel_url"),
        "client_reference_id": params.get("client_reference_id"), "created": created,
        "currency": currency, "customer": params.get("customer"),
        "customer_email": params.get("customer_email"), "expires_at": expires_at,
        "livemode": False, "metadata": dict(params.get("metadata") or {}), "mode": mode,
        "payment_intent": None, "payment_method_types": ["card"],
        "payment_status": "unpaid" if mode == "payment" else "no_payment_required",
        "setup_intent": None, "status": "open", "success_url": params["success_url"],
        "url": f"{origin}/checkout/{sid}",
    }
    fake.sessions[sid] = session
    fake.session_items[sid] = {
        "line_items": items,
        "intent_metadata": dict((params.get("payment_intent_data") or {}).get("metadata") or {}),
        "setup_metadata": dict((params.get("setup_intent_data") or {}).get("metadata") or {}),
    }
    return session


def session(fake: FakeStripe, sid: str) -> Body:
    """The session, expired first if its `expires_at` has passed."""
    found = fake.sessions.get(sid)
    if found is None:
        raise missing("checkout.session", sid)
    if found["status"] == "open" and found["expires_at"] <= o.now():
        _expire(fake, found, None)
    return found


def _expire(fake: FakeStripe, found: Body, key: str | None) -> None:
    found.update(status="expired", url=None)
    fake.emit("checkout.session.expired", found, key)


def expire(fake: FakeStripe, sid: str, key: str | None) -> Body:
    """`POST /v1/checkout/sessions/{id}/expire`: only an open session can be expired."""
    found = session(fake, sid)
    if found["status"] != "open":
        raise invalid("Only Checkout Sessions with a status of `open` can be expired.",
                      code="checkout_session_unexpected_state")
    _expire(fake, found, key)
    return found


def list_sessions(fake: FakeStripe, query: dict[str, str]) -> Body:
    """`GET /v1/checkout/sessions`: newest first; filters `payment_intent`, `customer`,
    `status`."""
    for sid in list(fake.sessions):
        session(fake, sid)
    found = [s for s in reversed(fake.sessions.values())
             if all(not query.get(k) or s[k] == query[k]
                    for k in ("payment_intent", "customer", "status"))]
    return page(found, query, "/v1/checkout/sessions")


def setup_intent(fake: FakeStripe, sid: str) -> Body:
    """`GET /v1/setup_intents/{id}`."""
    if sid not in fake.setup_intents:
        raise missing("setup_intent", sid)
    return fake.setup_intents[sid]


def token_for(card_number: str) -> str:
    """The test token of a Stripe test card number (spaces allowed); `CardRefused` else."""
    digits = re.sub(r"[\s-]", "", card_number)
    if digits not in CARD_NUMBERS:
        raise CardRefused("Your card number is incorrect.")
    return CARD_NUMBERS[digits]


def complete(fake: FakeStripe, sid: str, card_number: str) -> Body:
    """Complete open session `sid` with a test card; returns the session. Raises
    `CardRefused` with Stripe's message when the card is unknown or declined (the session
    stays open) and `ApiError` when the session is not open."""
    found = session(fake, sid)
    if found["status"] != "open":
        raise invalid(f"This Checkout Session is {found['status']}.")
    token = token_for(card_number)
    if found["mode"] == "payment":
        _pay(fake, found, token)
    else:
        _setup(fake, found, token)
    found.update(status="complete", url=None)
    if found["mode"] == "payment":
        found["payment_status"] = "paid"
    fake.emit("checkout.session.completed", found, None)
    return found


def _pay(fake: FakeStripe, found: Body, token: str) -> None:
    if found["payment_intent"] is None:
        extra = fake.session_items[found["id"]]
        pi = fake.create_intent({"amount": str(found["amount_total"]),
                                 "currency": found["currency"], "customer": found["customer"],
                                 "metadata": extra["intent_metadata"]}, None)
        found["payment_intent"] = pi["id"]
    pm = fake.payment_method(token)
    try:
        fake.confirm(found["payment_intent"], {"payment_method": pm["id"]}, None)
    except ApiError as exc:
        raise CardRefused(str(exc.error.get("message") or "Your card was declined.")) from None


def _setup(fake: FakeStripe, found: Body, token: str) -> None:
    pm = fake.payment_method(token)
    if found["customer"]:
        try:
            fake.attach(pm["id"], {"customer": found["customer"]}, None)
        except ApiError as exc:
            raise CardRefused(str(exc.error.get("message") or "Your card was declined.")) \
                from None
    elif fake.cards[pm["id"]].attach_declined:
        raise CardRefused(fake.cards[pm["id"]].message)
    seti = {
        "id": o.new_id("seti"), "object": "setup_intent", "cancellation_reason": None,
        "client_secret": None, "created": o.now(), "customer": found["customer"],
        "description": None, "last_setup_error": None, "livemode": False,
        "metadata": fake.session_items[found["id"]]["setup_metadata"], "next_action": None,
        "payment_method": pm["id"], "payment_method_types": ["card"],
        "status": "succeeded", "usage": "off_session",
    }
    seti["client_secret"] = f"{seti['id']}_secret_{o.new_id('s')[2:]}"
    fake.setup_intents[seti["id"]] = seti
    found["setup_intent"] = seti["id"]
    fake.emit("setup_intent.created", seti, None)
    fake.emit("setup_intent.succeeded", seti, None)
