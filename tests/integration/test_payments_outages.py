"""Stripe off the happy path: the charge is committed before any follow-up call, a success
webhook that beats its invoice is kept, and a replay after Stripe's 24 h idempotency window
finds the invoice's PaymentIntent instead of creating a second one."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from services.common.errors import DependencyUnavailable
from services.payments import handlers
from services.payments.adapters.stripe_gateway import StripeGateway
from services.payments.handlers import Deps
from tests.integration.payments_support import charge_directly, reconcile_all
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake, issued_invoice, outbox_events

pytestmark = pytest.mark.integration
ISSUED = datetime(2013, 8, 1, tzinfo=UTC)
T = TypeVar("T")


class NoPaymentMethodReads(StripeGateway):
    """Stripe answers everything but `payment_methods.retrieve` (an outage right after the
    charge)."""

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        if operation == "payment_methods.retrieve":
            raise DependencyUnavailable("Stripe payment_methods.retrieve: connection refused")
        return await super()._call(operation, call)


async def test_a_charge_is_committed_even_when_describing_its_card_fails(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    gateway = NoPaymentMethodReads(payments_deps.settings)
    deps = Deps(payments_deps.settings, payments_deps.store, gateway)
    try:
        assert await handlers.handle_invoice_issued(issued_invoice(), deps) == "succeeded"
    finally:
        await gateway.close()
    [intent] = stripe_fake.intents()
    [paid] = await outbox_events(mongo_db)
    assert (paid.payment_reference, paid.payment_method) == (intent["id"], "card visa 4242")


async def test_a_success_webhook_that_beats_its_invoice_is_kept_and_settles_it_later(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    invoice = issued_invoice()
    charged = await charge_directly(payments_deps, invoice)
    assert await reconcile_all(stripe_fake, payments_deps, "payment_intent.succeeded") == [
        "parked"]
    await handlers.setup_method("acme", "pm_card_chargeCustomerFail", payments_deps)

    assert await handlers.handle_invoice_issued(invoice, payments_deps) == "succeeded"
    assert len(stripe_fake.intents()) == 1  # settled by the kept webhook's intent
    [paid] = await outbox_events(mongo_db)
    assert paid.payment_reference == charged.payment_intent_id
    assert await mongo_db["payments_parked_events"].count_documents({}) == 0


async def test_a_replay_after_the_idempotency_window_finds_the_intent_instead_of_charging(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    invoice = issued_invoice()
    charged = await charge_directly(payments_deps, invoice)  # then the worker died
    stripe_fake.server.app.state.stripe.idempotency.clear()  # 24 h later: keys forgotten

    assert await handlers.handle_invoice_issued(invoice, payments_deps) == "succeeded"
    assert [pi["id"] for pi in stripe_fake.intents()] == [charged.payment_intent_id]
    [paid] = await outbox_events(mongo_db)
    assert paid.payment_reference == charged.payment_intent_id and paid.attempt == 1
