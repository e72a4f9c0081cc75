"""Stripe Checkout calls of the gateway (mixed into `StripeGateway`): Checkout Sessions in
payment and setup mode, re-reading a session and its SetupIntent, and making a card the
customer's default (docs/payments.md, "Paying from the portal").

Stripe's hosted Checkout page collects the card; a payment-mode session's PaymentIntent
carries the metadata given here (`payment_intent_data[metadata]`), so its webhooks reconcile
like any charge of the invoice. Sessions expire after 24 h unless completed
(https://docs.stripe.com/api/checkout/sessions/create#create_checkout_session-expires_at).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import stripe

from services.common.errors import PermanentError
from services.payments.domain import describe_card

T = TypeVar("T")


@dataclass(frozen=True)
class CheckoutSession:
    """A Checkout Session as Stripe answers it: id, hosted page `url` (None once closed),
    `mode` (`payment`, `setup`), `status` (`open`, `complete`, `expired`), the customer,
    the PaymentIntent or SetupIntent it made, and its metadata."""

    session_id: str
    url: str | None
    mode: str
    status: str
    customer_id: str | None
    payment_intent_id: str | None = None
    setup_intent_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SetupResult:
    """A SetupIntent re-read from Stripe: its status, customer and the card it set up."""

    status: str
    customer_id: str | None
    payment_method_id: str | None


def _id(value: Any) -> str | None:
    """An expandable field's id (a string, or an expanded object's `id`)."""
    if value is None:
        return None
    return value if isinstance(value, str) else str(getattr(value, "id", "")) or None


def _session(cs: Any) -> CheckoutSession:
    metadata = getattr(cs, "metadata", None)
    return CheckoutSession(
        str(cs.id), cs.url, str(cs.mode), str(cs.status), _id(cs.customer),
        _id(getattr(cs, "payment_intent", None)), _id(getattr(cs, "setup_intent", None)),
        {str(k): str(v) for k, v in (metadata.to_dict() if metadata is not None else {}).items()})


class CheckoutCalls:
    """The Checkout methods of `StripeGateway` (it provides `_client` and `_call`)."""

    _client: stripe.StripeClient

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def create_checkout(self, *, customer_id: str, mode: Literal["payment", "setup"],
                              success_url: str, cancel_url: str, metadata: dict[str, str],
                              amount: int = 0, currency: str = "", name: str = "",
                              idempotency_key: str | None = None) -> CheckoutSession:
        """A new Checkout Session for the customer. Payment mode: one line item `name` of
        `amount` (minor units) in `currency`, the PaymentIntent's metadata `metadata`;
        setup mode: a card for later off-session charges. `idempotency_key`: sent as
        Stripe's `Idempotency-Key`, so a retried transient error replays the first session.
        Raises `PermanentError` (`stripe_rejected`) or `DependencyUnavailable`."""
        params: dict[str, Any] = {
            "mode": mode, "customer": customer_id, "success_url": success_url,
            "cancel_url": cancel_url, "metadata": metadata, "payment_method_types": ["card"],
        }
        if mode == "payment":
            params["line_items"] = [{"quantity": 1, "price_data": {
                "currency": currency.lower(), "unit_amount": amount,
                "product_data": {"name": name}}}]
            params["payment_intent_data"] = {"metadata": metadata}
        else:
            params["setup_intent_data"] = {"metadata": metadata}
        options: Any = {"idempotency_key": idempotency_key} if idempotency_key else {}
        cs = await self._call("checkout.sessions.create",
                              lambda: self._client.v1.checkout.sessions.create_async(
                                  params=params,  # type: ignore[arg-type]
                                  options=options))
        return _session(cs)

    async def checkout_session(self, session_id: str) -> CheckoutSession:
        """Re-read a Checkout Session (`GET /v1/checkout/sessions/{id}`)."""
        cs = await self._call("checkout.sessions.retrieve",
                              lambda: self._client.v1.checkout.sessions.retrieve_async(
                                  session_id))
        return _session(cs)

    async def open_checkouts(self, customer_id: str, status: str = "open"
                             ) -> list[CheckoutSession]:
        """The customer's Checkout Sessions in `status` (`open`, `complete`, `expired`),
        newest first (first 100)."""
        page = await self._call("checkout.sessions.list",
                                lambda: self._client.v1.checkout.sessions.list_async(params={
                                    "customer": customer_id, "status": status, "limit": 100}))
        return [_session(cs) for cs in page.data]

    async def expire_checkout(self, session_id: str) -> bool:
        """Expire an open Checkout Session so it can no longer be paid; False when Stripe
        refuses because it is not open any more (completed or expired meanwhile)."""
        try:
            await self._call("checkout.sessions.expire",
                             lambda: self._client.v1.checkout.sessions.expire_async(session_id))
        except PermanentError:
            return False
        return True

    async def setup_intent(self, setup_intent_id: str) -> SetupResult:
        """Re-read a SetupIntent (`GET /v1/setup_intents/{id}`)."""
        si = await self._call("setup_intents.retrieve",
                              lambda: self._client.v1.setup_intents.retrieve_async(
                                  setup_intent_id))
        return SetupResult(str(si.status), _id(si.customer), _id(si.payment_method))

    async def make_default(self, customer_id: str, payment_method_id: str) -> str:
        """Make an attached card the customer's default for invoices; returns its
        description (`card visa 4242`)."""
        await self._call("customers.update", lambda: self._client.v1.customers.update_async(
            customer_id,
            params={"invoice_settings": {"default_payment_method": payment_method_id}}))
        pm = await self._call("payment_methods.retrieve",
                              lambda: self._client.v1.payment_methods.retrieve_async(
                                  payment_method_id))
        card = getattr(pm, "card", None)
        return describe_card(card.brand, card.last4) if card is not None else "card"
