"""Stripe objects of the fake, shaped like Stripe's own (the API reference's example objects),
and Stripe's test payment methods (`TEST_CARDS`; see docs/stripe-fake.md, "Test payment
methods"; source: https://docs.stripe.com/testing#declined-payments).

A test token (`pm_card_visa`, ...) names a card; each use creates a new `pm_...` object for it.
Cards that Stripe declines already when attached to a customer (`attach_declined`) raise the
402 `card_error` there; `pm_card_chargeCustomerFail` attaches and then every charge of it is
declined.
"""

import secrets
import string
import time
from dataclasses import dataclass
from typing import Any

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """A Stripe-like id: `prefix_` plus 24 random alphanumerics."""
    return f"{prefix}_{''.join(secrets.choice(_ALPHABET) for _ in range(24))}"


def now() -> int:
    """Unix seconds, Stripe's `created` unit."""
    return int(time.time())


@dataclass(frozen=True)
class TestCard:
    """What a test token stands for: the card, how charging it ends (`decline_code` None:
    it succeeds) and whether attaching it to a customer is already declined."""

    brand: str
    last4: str
    decline_code: str | None = None
    message: str = ""
    attach_declined: bool = False


_GENERIC = TestCard("visa", "0002", "generic_decline", "Your card was declined.",
                    attach_declined=True)
_FUNDS = TestCard("visa", "9995", "insufficient_funds", "Your card has insufficient funds.",
                  attach_declined=True)
TEST_CARDS: dict[str, TestCard] = {
    "pm_card_visa": TestCard("visa", "4242"),
    "pm_card_mastercard": TestCard("mastercard", "4444"),
    "pm_card_amex": TestCard("amex", "8431"),
    "pm_card_chargeDeclined": _GENERIC,
    "pm_card_visa_chargeDeclined": _GENERIC,
    "pm_card_chargeDeclinedInsufficientFunds": _FUNDS,
    "pm_card_visa_chargeDeclinedInsufficientFunds": _FUNDS,
    "pm_card_chargeCustomerFail": TestCard(
        "visa", "0341", "generic_decline", "Your card was declined."
    ),
}


ADDRESS_FIELDS = ("city", "country", "line1", "line2", "postal_code", "state")


def address(params: Any) -> dict[str, Any] | None:
    """A customer's `address` hash (Stripe: city, country, line1, line2, postal_code, state;
    absent parts null), or None when `params` is empty."""
    if not isinstance(params, dict) or not any(params.get(k) for k in ADDRESS_FIELDS):
        return None
    return {k: params.get(k) or None for k in ADDRESS_FIELDS}


def customer(cid: str, params: dict[str, Any]) -> dict[str, Any]:
    """A `customer` object from create parameters."""
    settings = params.get("invoice_settings") or {}
    return {
        "id": cid, "object": "customer", "address": address(params.get("address")),
        "balance": 0, "created": now(),
        "currency": None, "default_source": None, "delinquent": False,
        "description": params.get("description"), "discount": None,
        "email": params.get("email"), "invoice_prefix": cid[-7:].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": settings.get("default_payment_method"),
            "footer": None, "rendering_options": None,
        },
        "livemode": False, "metadata": dict(params.get("metadata") or {}),
        "name": params.get("name"), "next_invoice_sequence": 1, "phone": None,
        "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None,
    }


def payment_method(pid: str, card: TestCard, customer_id: str | None) -> dict[str, Any]:
    """A `payment_method` object of type card for a test card."""
    return {
        "id": pid, "object": "payment_method", "allow_redisplay": "unspecified",
        "billing_details": {"address": None, "email": None, "name": None, "phone": None},
        "card": {
            "brand": card.brand, "checks": {"cvc_check": "pass"}, "country": "US",
            "display_brand": card.brand, "exp_month": 12, "exp_year": 2034,
            "fingerprint": pid[-16:], "funding": "credit", "last4": card.last4,
            "networks": {"available": [card.brand], "preferred": None},
            "three_d_secure_usage": {"supported": True}, "wallet": None,
        },
        "created": now(), "customer": customer_id, "livemode": False, "metadata": {},
        "type": "card",
    }


def payment_intent(pid: str, params: dict[str, Any]) -> dict[str, Any]:
    """A `payment_intent` object (status `requires_payment_method` or `requires_confirmation`)."""
    return {
        "id": pid, "object": "payment_intent", "amount": int(params["amount"]),
        "amount_capturable": 0, "amount_received": 0, "application": None,
        "application_fee_amount": None, "automatic_payment_methods": None,
        "canceled_at": None, "cancellation_reason": None, "capture_method": "automatic",
        "client_secret": f"{pid}_secret_{new_id('s')[2:]}", "confirmation_method": "automatic",
        "created": now(), "currency": str(params["currency"]).lower(),
        "customer": params.get("customer"), "description": params.get("description"),
        "last_payment_error": None, "latest_charge": None, "livemode": False,
        "metadata": dict(params.get("metadata") or {}), "next_action": None,
        "on_behalf_of": None, "payment_method": None, "payment_method_options": {},
        "payment_method_types": ["card"], "processing": None, "receipt_email": None,
        "review": None, "setup_future_usage": None, "shipping": None,
        "statement_descriptor": None, "statement_descriptor_suffix": None,
        "status": "requires_payment_method", "transfer_data": None, "transfer_group": None,
    }


def charge(cid: str, intent: dict[str, Any], pm: dict[str, Any], card: TestCard) -> dict[str, Any]:
    """A `charge` object for one confirmation of `intent` with `pm`."""
    failed = card.decline_code is not None
    return {
        "id": cid, "object": "charge", "amount": intent["amount"],
        "amount_captured": 0 if failed else intent["amount"], "amount_refunded": 0,
        "balance_transaction": None if failed else new_id("txn"), "captured": not failed,
        "created": now(), "currency": intent["currency"], "customer": intent["customer"],
        "description": intent["description"], "disputed": False,
        "failure_code": "card_declined" if failed else None,
        "failure_message": card.message if failed else None,
        "livemode": False, "metadata": dict(intent["metadata"]),
        "outcome": {
            "network_status": "declined_by_network" if failed else "approved_by_network",
            "reason": card.decline_code, "risk_level": "normal",
            "seller_message": "The bank did not return any further details with this decline."
            if failed else "Payment complete.",
            "type": "issuer_declined" if failed else "authorized",
        },
        "paid": not failed, "payment_intent": intent["id"], "payment_method": pm["id"],
        "payment_method_details": {
            "card": {"brand": card.brand, "last4": card.last4, "country": "US",
                     "exp_month": 12, "exp_year": 2034, "funding": "credit",
                     "network": card.brand},
            "type": "card",
        },
        "refunded": False,
        "refunds": {"object": "list", "data": [], "has_more": False,
                    "url": f"/v1/charges/{cid}/refunds"},
        "status": "failed" if failed else "succeeded",
    }


def refund(rid: str, ch: dict[str, Any], amount: int, reason: str | None) -> dict[str, Any]:
    """A succeeded `refund` object of `amount` from charge `ch`."""
    return {
        "id": rid, "object": "refund", "amount": amount, "balance_transaction": new_id("txn"),
        "charge": ch["id"], "created": now(), "currency": ch["currency"], "metadata": {},
        "payment_intent": ch["payment_intent"], "reason": reason, "receipt_number": None,
        "status": "succeeded", "destination_details": {"card": {"type": "refund"},
                                                        "type": "card"},
    }


def event(etype: str, obj: dict[str, Any], request_id: str | None,
          idempotency_key: str | None) -> dict[str, Any]:
    """An `event` object carrying a snapshot of `obj`."""
    return {
        "id": new_id("evt"), "object": "event", "api_version": "2025-08-27.basil",
        "created": now(), "data": {"object": obj}, "livemode": False, "pending_webhooks": 0,
        "request": {"id": request_id, "idempotency_key": idempotency_key}, "type": etype,
    }


def card_error(code: str, message: str, decline_code: str | None = None,
               **extra: Any) -> dict[str, Any]:
    """The `error` member of a card error response (HTTP 402)."""
    err: dict[str, Any] = {
        "type": "card_error", "code": code, "message": message,
        "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
    }
    if decline_code:
        err["decline_code"] = decline_code
    err.update(extra)
    return err
