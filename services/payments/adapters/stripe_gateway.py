"""The Stripe gateway: the calls the payments service makes, through the real `stripe` SDK.

`PaymentGateway` is the interface handlers use; `StripeGateway` implements it with an async
`StripeClient` (httpx) whose API base comes from settings (Stripe or the fake). Transient
errors (connection errors and timeouts, HTTP 429, 5xx) are retried with exponential back-off
using the same idempotency key, then raised as `DependencyUnavailable`; requests Stripe
refuses (invalid, idempotency conflict, authentication) raise `PermanentError`.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, TypeVar

import stripe

from services.common.errors import DependencyUnavailable, PermanentError
from services.payments.adapters.metrics import STRIPE_ERRORS, STRIPE_LATENCY
from services.payments.adapters.stripe_checkout import (
    CheckoutCalls,
    CheckoutSession,
    SetupResult,
)
from services.payments.adapters.stripe_customers import CustomerCalls
from services.payments.domain import (
    CHECKOUT_SOURCE,
    PAY_NOW_SOURCE,
    ChargeResult,
    Intent,
    customer_idempotency_key,
    describe_card,
)
from services.payments.settings import PaymentsSettings

T = TypeVar("T")
TRANSIENT = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)


class PaymentGateway(Protocol):
    """What the payments service asks of Stripe."""

    async def ensure_customer(self, tenant_id: str, customer_id: str | None) -> str:
        """The tenant's customer id (`customer_id` when known, else a new customer)."""
        ...

    async def attach_default(self, customer_id: str, payment_method: str) -> tuple[str, str]:
        """(payment method id, description); raises `CardDeclined` when Stripe declines the
        card on attaching it."""
        ...

    async def charge(self, *, customer_id: str, payment_method_id: str, amount: int,
                     currency: str, idempotency_key: str,
                     metadata: dict[str, str]) -> ChargeResult: ...

    async def intent(self, intent_id: str) -> Intent: ...

    async def invoice_intents(self, customer_id: str, invoice_id: str) -> list[Intent]: ...

    async def describe_method(self, payment_method_id: str) -> str | None: ...

    async def register_webhook(self, url: str) -> str: ...

    async def create_checkout(self, *, customer_id: str, mode: Literal["payment", "setup"],
                              success_url: str, cancel_url: str, metadata: dict[str, str],
                              amount: int = 0, currency: str = "", name: str = "",
                              idempotency_key: str | None = None) -> CheckoutSession:
        """A Checkout Session (`adapters/stripe_checkout.py`)."""
        ...

    async def checkout_session(self, session_id: str) -> CheckoutSession: ...

    async def open_checkouts(self, customer_id: str, status: str = "open"
                             ) -> list[CheckoutSession]: ...

    async def expire_checkout(self, session_id: str) -> bool: ...

    async def setup_intent(self, setup_intent_id: str) -> SetupResult: ...

    async def make_default(self, customer_id: str, payment_method_id: str) -> str: ...

    async def update_customer_details(self, customer_id: str, tenant_id: str, *, name: str,
                                      email: str, address: dict[str, str]) -> None:
        """The billing details on the customer (`adapters/stripe_customers.py`)."""
        ...

    async def set_tax_id(self, customer_id: str, value: str | None,
                         country: str | None) -> None: ...

    async def default_method(self, customer_id: str) -> tuple[str | None, dict[str, str]]: ...

    async def portal_session(self, customer_id: str, return_url: str) -> str: ...

    async def close(self) -> None: ...


class CardDeclined(PermanentError):
    """Stripe declined a card (HTTP 402, error type `card_error`): reason `card_declined`
    (Stripe's error `code`), with Stripe's `decline_code` (e.g. `generic_decline`,
    `insufficient_funds`; https://docs.stripe.com/declines/codes) and message."""

    def __init__(self, payment_method: str, code: str, decline_code: str | None,
                 message: str) -> None:
        why = f" ({decline_code})" if decline_code else ""
        super().__init__(code, f"{payment_method} was declined{why}: {message}")
        self.payment_method = payment_method
        self.decline_code = decline_code
        self.message = message

    @classmethod
    def from_stripe(cls, payment_method: str, exc: stripe.CardError) -> "CardDeclined":
        """From the SDK's `CardError` (its `code`, `error.decline_code`, `error.message`)."""
        err = exc.error
        return cls(payment_method, exc.code or "card_declined",
                   getattr(err, "decline_code", None) if err is not None else None,
                   (getattr(err, "message", None) if err is not None else None)
                   or str(exc.user_message or exc))


class _HTTPXClient(stripe.HTTPXClient):
    """The SDK's httpx client, passing an encoded body as `content=` (httpx deprecates raw
    bytes or text through `data=`)."""

    def _get_request_args_kwargs(  # type: ignore[no-untyped-def]
        self, method: str, url: str, headers: Any, post_data: Any
    ):
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        if isinstance(kwargs.get("data"), str | bytes):
            kwargs["content"] = kwargs.pop("data")
        elif not kwargs.get("data"):
            kwargs.pop("data", None)
        return args, kwargs


def make_stripe_client(settings: PaymentsSettings) -> stripe.StripeClient:
    """An async-capable `StripeClient` for `settings` (SDK retries off: the gateway retries)."""
    return stripe.StripeClient(
        settings.stripe_api_key,
        base_addresses={"api": settings.stripe_api_base},
        http_client=_HTTPXClient(timeout=settings.stripe_timeout_seconds),
        max_network_retries=0,
    )


def _card_description(pm: Any) -> str | None:
    card = getattr(pm, "card", None) if pm is not None else None
    return describe_card(card.brand, card.last4) if card is not None else None


def _metadata(obj: Any) -> dict[str, Any]:
    """An object's `metadata` as a plain dict (the SDK's objects are not dicts)."""
    metadata = getattr(obj, "metadata", None)
    return dict(metadata.to_dict()) if metadata is not None else {}


class StripeGateway(CheckoutCalls, CustomerCalls):
    """`PaymentGateway` over the Stripe API (see the module docstring); the Checkout calls
    come from `CheckoutCalls`, the billing details and portal from `CustomerCalls`."""

    def __init__(self, settings: PaymentsSettings,
                 client: stripe.StripeClient | None = None) -> None:
        self._settings = settings
        self._client = client or make_stripe_client(settings)

    async def close(self) -> None:
        http = self._client._requestor._client  # the SDK keeps its HTTP client here
        if http is not None:
            await http.close_async()  # type: ignore[no-untyped-call]

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.monotonic()
        tries = self._settings.stripe_retries + 1
        try:
            for n in range(tries):
                try:
                    return await call()
                except TRANSIENT as exc:
                    STRIPE_ERRORS.labels(operation, "transient").inc()
                    if n == tries - 1:
                        raise DependencyUnavailable(
                            f"Stripe {operation} failed {tries} times: {exc}") from exc
                    await asyncio.sleep(self._settings.stripe_retry_base_seconds * 2**n)
                except stripe.CardError:
                    STRIPE_ERRORS.labels(operation, "card").inc()
                    raise
                except stripe.StripeError as exc:
                    STRIPE_ERRORS.labels(operation, "rejected").inc()
                    raise PermanentError("stripe_rejected", f"{operation}: {exc}") from exc
            raise AssertionError("unreachable")
        finally:
            STRIPE_LATENCY.labels(operation).observe(time.monotonic() - started)

    async def ensure_customer(self, tenant_id: str, customer_id: str | None) -> str:
        """The tenant's Stripe customer id, creating it (metadata `tenant_id`) when needed."""
        if customer_id:
            return customer_id
        cus = await self._call("customers.create", lambda: self._client.v1.customers.create_async(
            params={"metadata": {"tenant_id": tenant_id}},
            options={"idempotency_key": customer_idempotency_key(tenant_id)},
        ))
        return str(cus.id)

    async def attach_default(self, customer_id: str, payment_method: str) -> tuple[str, str]:
        """Attach `payment_method` (an id or a test token) to the customer and make it the
        default; returns (payment method id, description like `card visa 4242`).

        Raises `CardDeclined` when Stripe declines the card already on attaching (HTTP 402
        `card_error`; docs/stripe-fake.md, "Test payment methods"): the customer's default
        is then left as it was."""
        try:
            pm = await self._call("payment_methods.attach",
                                  lambda: self._client.v1.payment_methods.attach_async(
                                      payment_method, params={"customer": customer_id}))
        except stripe.CardError as exc:
            raise CardDeclined.from_stripe(payment_method, exc) from exc
        await self._call("customers.update", lambda: self._client.v1.customers.update_async(
            customer_id, params={"invoice_settings": {"default_payment_method": pm.id}}))
        return str(pm.id), _card_description(pm) or "card"

    async def charge(self, *, customer_id: str, payment_method_id: str, amount: int,
                     currency: str, idempotency_key: str,
                     metadata: dict[str, str]) -> ChargeResult:
        """Create and confirm an off-session PaymentIntent. A card error is a failed result,
        not an exception. No other call follows: the caller commits the result first
        (`payment_method` is left to the caller; `payment_method_id` names the card)."""
        params: Any = {
            "amount": amount, "currency": currency.lower(), "customer": customer_id,
            "payment_method": payment_method_id, "confirm": True, "off_session": True,
            "metadata": metadata,
        }
        try:
            pi = await self._call("payment_intents.create",
                                  lambda: self._client.v1.payment_intents.create_async(
                                      params=params,
                                      options={"idempotency_key": idempotency_key}))
        except stripe.CardError as exc:
            err = exc.error
            intent = getattr(err, "payment_intent", None) if err is not None else None
            return ChargeResult(
                succeeded=False,
                payment_intent_id=getattr(intent, "id", None),
                failure_code=exc.code or "card_declined",
                decline_code=getattr(err, "decline_code", None) if err is not None else None,
                failure_message=(err.message if err is not None else None) or str(exc),
            )
        return await self._result(pi)

    async def _result(self, pi: Any) -> ChargeResult:
        pm_id = str(pi.payment_method) if isinstance(pi.payment_method, str) else None
        if pi.status == "succeeded":
            return ChargeResult(True, str(pi.id), None, payment_method_id=pm_id)
        err = pi.last_payment_error
        return ChargeResult(
            succeeded=False, payment_intent_id=str(pi.id),
            failure_code=getattr(err, "code", None) if err else pi.status,
            decline_code=getattr(err, "decline_code", None) if err else None,
            failure_message=(getattr(err, "message", None) if err else None)
            or f"payment intent {pi.status}", payment_method_id=pm_id,
        )

    async def _intent(self, pi: Any) -> Intent:
        metadata = _metadata(pi)
        attempt = str(metadata.get("attempt", ""))
        return Intent(str(pi.status), await self._result(pi), metadata.get("invoice_id"),
                      int(pi.amount), str(pi.currency).upper(),
                      int(attempt) if attempt.isdigit() else None,
                      checkout=metadata.get("source") == CHECKOUT_SOURCE,
                      by_tenant=metadata.get("source") == PAY_NOW_SOURCE)

    async def intent(self, intent_id: str) -> Intent:
        """Re-read a PaymentIntent (`GET /v1/payment_intents/{id}`)."""
        pi = await self._call("payment_intents.retrieve",
                              lambda: self._client.v1.payment_intents.retrieve_async(intent_id))
        return await self._intent(pi)

    async def invoice_intents(self, customer_id: str, invoice_id: str) -> list[Intent]:
        """Every PaymentIntent of the customer whose `metadata.invoice_id` is `invoice_id`
        (`GET /v1/payment_intents?customer=`, all pages), newest first."""
        found: list[Intent] = []
        after: str | None = None
        while True:
            params: Any = {"customer": customer_id, "limit": 100}
            if after:
                params["starting_after"] = after

            async def one_page(query: Any = params) -> Any:
                return await self._client.v1.payment_intents.list_async(params=query)

            page = await self._call("payment_intents.list", one_page)
            for pi in page.data:
                if _metadata(pi).get("invoice_id") == invoice_id:
                    found.append(await self._intent(pi))
            if not page.has_more or not page.data:
                return found
            after = str(page.data[-1].id)

    async def describe_method(self, payment_method_id: str) -> str | None:
        """`card visa 4242` for a payment method id (`GET /v1/payment_methods/{id}`)."""
        pm = await self._call("payment_methods.retrieve",
                              lambda: self._client.v1.payment_methods.retrieve_async(
                                  payment_method_id))
        return _card_description(pm)

    async def register_webhook(self, url: str) -> str:
        """Register `url` for every event (`POST /v1/webhook_endpoints`); returns its id."""
        we = await self._call("webhook_endpoints.create",
                              lambda: self._client.v1.webhook_endpoints.create_async(
                                  params={"url": url, "enabled_events": ["*"]}))
        return str(we.id)
