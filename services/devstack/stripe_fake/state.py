"""The fake's Stripe logic: objects in memory, the `Idempotency-Key` rules and the events each
API call causes. No HTTP here: every operation returns `(status, body)` or raises `ApiError`."""

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.devstack.stripe_fake import objects as o
from services.devstack.stripe_fake.errors import ApiError, invalid, missing
from services.devstack.stripe_fake.forms import as_bool
from services.devstack.stripe_fake.listing import page

Body = dict[str, Any]
__all__ = ["ApiError", "Body", "FakeStripe", "Saved", "invalid", "missing"]


@dataclass
class Saved:
    """A response remembered under an idempotency key with what it answered."""

    fingerprint: str
    status: int
    body: Body


@dataclass
class FakeStripe:
    """All objects of one fake Stripe account. `on_event` sees each new event."""

    on_event: Callable[[Body], None] = lambda _e: None
    customers: dict[str, Body] = field(default_factory=dict)
    payment_methods: dict[str, Body] = field(default_factory=dict)
    cards: dict[str, o.TestCard] = field(default_factory=dict)
    intents: dict[str, Body] = field(default_factory=dict)
    charges: dict[str, Body] = field(default_factory=dict)
    refunds: dict[str, Body] = field(default_factory=dict)
    #: Checkout Sessions, what each was created with beyond its object, and SetupIntents
    sessions: dict[str, Body] = field(default_factory=dict)
    session_items: dict[str, Body] = field(default_factory=dict)
    setup_intents: dict[str, Body] = field(default_factory=dict)
    #: billing portal sessions and customer tax ids (`billing_portal.py`)
    portal_sessions: dict[str, Body] = field(default_factory=dict)
    tax_ids: dict[str, Body] = field(default_factory=dict)
    events: list[Body] = field(default_factory=list)
    endpoints: dict[str, Body] = field(default_factory=dict)
    idempotency: dict[str, Saved] = field(default_factory=dict)
    requests: int = 0

    def reset(self) -> None:
        """Forget every object, event, endpoint and idempotency key."""
        for store in (self.customers, self.payment_methods, self.cards, self.intents,
                      self.charges, self.refunds, self.endpoints, self.idempotency,
                      self.sessions, self.session_items, self.setup_intents,
                      self.portal_sessions, self.tax_ids):
            store.clear()
        self.events.clear()

    # -- idempotency ---------------------------------------------------------------------
    def idempotent(self, key: str | None, method: str, path: str, params: Body,
                   run: Callable[[], tuple[int, Body]]) -> tuple[int, Body, bool]:
        """Run a POST once per `Idempotency-Key`: the same key and parameters replay the first
        response (third item True); the same key with other parameters or another endpoint
        is a 400 `idempotency_error`."""
        if key is None:
            return (*run(), False)
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        saved = self.idempotency.get(key)
        if saved is not None:
            if saved.fingerprint != fingerprint:
                raise ApiError(400, {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent requests can only be used with the same "
                    "parameters they were first used with. Try using a key other than "
                    f"'{key}' if you meant to execute a different request.",
                })
            return saved.status, copy.deepcopy(saved.body), True
        try:
            status, body = run()
        except ApiError as exc:
            status, body = exc.status, {"error": exc.error}
        self.idempotency[key] = Saved(fingerprint, status, copy.deepcopy(body))
        return status, body, False

    def emit(self, etype: str, obj: Body, key: str | None) -> None:
        """Record (and hand to `on_event`) an event of `etype` carrying a copy of `obj`."""
        self._emit(etype, obj, key)

    def _emit(self, etype: str, obj: Body, key: str | None) -> None:
        evt = o.event(etype, copy.deepcopy(obj), o.new_id("req"), key)
        evt["pending_webhooks"] = len(self.endpoints)
        self.events.append(evt)
        self.on_event(evt)

    # -- customers -----------------------------------------------------------------------
    def create_customer(self, params: Body, key: str | None) -> Body:
        cus = o.customer(o.new_id("cus"), params)
        self.customers[cus["id"]] = cus
        self._emit("customer.created", cus, key)
        return cus

    def customer(self, cid: str) -> Body:
        if cid not in self.customers:
            raise missing("customer", cid)
        return self.customers[cid]

    def update_customer(self, cid: str, params: Body, key: str | None) -> Body:
        cus = self.customer(cid)
        for name in ("email", "name", "description"):
            if name in params:
                cus[name] = params[name] or None
        if "address" in params:
            cus["address"] = o.address(params["address"])
        for k, v in (params.get("metadata") or {}).items():
            if v == "":
                cus["metadata"].pop(k, None)
            else:
                cus["metadata"][k] = v
        default = (params.get("invoice_settings") or {}).get("default_payment_method")
        if default is not None:
            pm = self.payment_method(default)
            if pm["customer"] != cid:
                raise invalid(f"The payment method {default} is not attached to {cid}.",
                              "invoice_settings[default_payment_method]")
            cus["invoice_settings"]["default_payment_method"] = default or None
        self._emit("customer.updated", cus, key)
        return cus

    # -- payment methods -----------------------------------------------------------------
    def payment_method(self, pid: str, customer: str | None = None) -> Body:
        """The payment method `pid`; a test token creates a fresh `pm_...` (for `customer`)."""
        if pid in o.TEST_CARDS:
            pm = o.payment_method(o.new_id("pm"), o.TEST_CARDS[pid], customer)
            self.payment_methods[pm["id"]] = pm
            self.cards[pm["id"]] = o.TEST_CARDS[pid]
            return pm
        if pid not in self.payment_methods:
            raise missing("PaymentMethod", pid)
        return self.payment_methods[pid]

    def attach(self, pid: str, params: Body, key: str | None) -> Body:
        cid = params.get("customer")
        if not cid:
            raise invalid("Missing required param: customer.", "customer")
        self.customer(cid)
        pm = self.payment_method(pid)
        if pm["customer"] not in (None, cid):
            raise invalid(f"The payment method {pm['id']} is attached to another customer.")
        card = self.cards[pm["id"]]
        if card.attach_declined:  # Stripe checks the card with the issuer when attaching
            raise ApiError(402, o.card_error("card_declined", card.message, card.decline_code))
        pm["customer"] = cid
        self._emit("payment_method.attached", pm, key)
        return pm

    # -- payment intents -----------------------------------------------------------------
    def intent(self, pid: str) -> Body:
        if pid not in self.intents:
            raise missing("payment_intent", pid)
        return self.intents[pid]

    def create_intent(self, params: Body, key: str | None) -> Body:
        try:
            amount = int(params.get("amount", ""))
        except ValueError:
            raise invalid("Missing required param: amount.", "amount") from None
        if amount < 1:
            raise invalid("This value must be greater than or equal to 1.", "amount")
        if not params.get("currency"):
            raise invalid("Missing required param: currency.", "currency")
        if params.get("customer"):
            self.customer(params["customer"])
        pi = o.payment_intent(o.new_id("pi"), params)
        self.intents[pi["id"]] = pi
        if params.get("payment_method"):
            pm = self.payment_method(params["payment_method"], None)
            pi["payment_method"] = pm["id"]
            pi["status"] = "requires_confirmation"
        self._emit("payment_intent.created", pi, key)
        if as_bool(params.get("confirm", "false")):
            return self.confirm(pi["id"], {}, key)
        return pi

    def confirm(self, pid: str, params: Body, key: str | None) -> Body:
        """Confirm: a test card succeeds or is declined (402 with the intent in the error)."""
        pi = self.intent(pid)
        if pi["status"] == "succeeded":
            raise invalid("This PaymentIntent's payment_method could not be updated because "
                          "it has a status of succeeded.", code="payment_intent_unexpected_state")
        if params.get("payment_method"):
            pi["payment_method"] = self.payment_method(params["payment_method"])["id"]
        if not pi["payment_method"]:
            raise invalid("You cannot confirm this PaymentIntent because it's missing a "
                          "payment method.", code="payment_intent_unexpected_state")
        pm = self.payment_methods[pi["payment_method"]]
        if pi["customer"] and pm["customer"] not in (None, pi["customer"]):
            raise invalid(f"The provided PaymentMethod {pm['id']} belongs to another customer.")
        card = self.cards[pm["id"]]
        ch = o.charge(o.new_id("ch"), pi, pm, card)
        self.charges[ch["id"]] = ch
        pi["latest_charge"] = ch["id"]
        if card.decline_code is None:
            pi.update(status="succeeded", amount_received=pi["amount"], last_payment_error=None)
            self._emit("charge.succeeded", ch, key)
            self._emit("payment_intent.succeeded", pi, key)
            return pi
        err = o.card_error("card_declined", card.message, card.decline_code,
                           charge=ch["id"], payment_method=copy.deepcopy(pm))
        pi.update(status="requires_payment_method", last_payment_error=err, payment_method=None)
        self._emit("charge.failed", ch, key)
        self._emit("payment_intent.payment_failed", pi, key)
        raise ApiError(402, {**err, "payment_intent": copy.deepcopy(pi)})

    def list_intents(self, query: dict[str, str]) -> Body:
        """`GET /v1/payment_intents`: newest first, `customer` filters, paged as Stripe's
        lists (`listing.page`). Stripe offers no metadata filter here: callers match
        `metadata` themselves (docs/stripe-fake.md, "Lists")."""
        found = [pi for pi in reversed(self.intents.values())
                 if not query.get("customer") or pi["customer"] == query["customer"]]
        return page(found, query, "/v1/payment_intents")

    # -- refunds -------------------------------------------------------------------------
    def create_refund(self, params: Body, key: str | None) -> Body:
        """`POST /v1/refunds`: refund `amount` (minor units; default what is left) of the
        latest charge of `payment_intent` (or of `charge`); sends `refund.created` and
        `charge.refunded`. 400 when nothing succeeded or the amount is more than what is
        left (docs/stripe-fake.md, "Refunds")."""
        if params.get("payment_intent"):
            charge_id = self.intent(params["payment_intent"])["latest_charge"]
        else:
            charge_id = params.get("charge")
        ch = self.charges.get(charge_id or "")
        if ch is None or ch["status"] != "succeeded":
            raise invalid("This charge has no successful payment to refund.", "payment_intent")
        left = ch["amount"] - ch["amount_refunded"]
        try:
            amount = int(params.get("amount", left))
        except ValueError:
            raise invalid("Invalid integer: amount.", "amount") from None
        if amount < 1 or amount > left:
            raise invalid(f"Refund amount ({amount}) is greater than unrefunded amount "
                          f"on charge ({left})", "amount")
        rf = o.refund(o.new_id("re"), ch, amount, params.get("reason"))
        self.refunds[rf["id"]] = rf
        ch["amount_refunded"] += amount
        ch["refunded"] = ch["amount_refunded"] == ch["amount"]
        ch["refunds"]["data"].append(rf)
        self._emit("refund.created", rf, key)
        self._emit("charge.refunded", ch, key)
        return rf

    def refund(self, rid: str) -> Body:
        if rid not in self.refunds:
            raise missing("refund", rid)
        return self.refunds[rid]

    def list_refunds(self, query: dict[str, str]) -> Body:
        """`GET /v1/refunds`: newest first, `payment_intent` or `charge` filter."""
        found = [rf for rf in reversed(self.refunds.values())
                 if all(not query.get(k) or rf[k] == query[k]
                        for k in ("payment_intent", "charge"))]
        return page(found, query, "/v1/refunds")

    # -- webhook endpoints ---------------------------------------------------------------
    def create_endpoint(self, params: Body, secret: str) -> Body:
        if not params.get("url"):
            raise invalid("Missing required param: url.", "url")
        events = params.get("enabled_events") or ["*"]
        we = {"id": o.new_id("we"), "object": "webhook_endpoint", "api_version": None,
              "application": None, "created": o.now(), "description": params.get("description"),
              "enabled_events": list(events), "livemode": False,
              "metadata": dict(params.get("metadata") or {}), "status": "enabled",
              "url": params["url"], "secret": secret}
        self.endpoints[we["id"]] = we
        return we

    def list_events(self, query: dict[str, str]) -> Body:
        """Newest first, like Stripe; `type` filters, `limit`/`starting_after` page."""
        found = [e for e in reversed(self.events)
                 if not query.get("type") or e["type"] == query["type"]]
        return page(found, query, "/v1/events")
