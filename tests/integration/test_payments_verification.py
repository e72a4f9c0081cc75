"""Webhooks are checked against Stripe and the invoice before anything is applied, and the
webhook ingress and the payments worker refuse to start without a signing secret."""

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.payments import handlers
from services.payments.handlers import Deps
from services.payments.settings import PaymentsSettings
from services.payments.webhooks import WebhookIngress
from tests.integration.payments_support import charge_directly, received
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake, issued_invoice, outbox_events

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ISSUED = datetime(2013, 8, 1, tzinfo=UTC)


async def test_a_webhook_is_applied_only_when_the_intent_matches_the_invoice(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    await handlers.setup_method("acme", "pm_card_chargeCustomerFail", payments_deps)
    invoice = issued_invoice()
    assert await handlers.handle_invoice_issued(invoice, payments_deps) == "failed"
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    from services.payments.adapters.metrics import WEBHOOK_MISMATCHES

    before = WEBHOOK_MISMATCHES.labels("amount")._value.get()

    # a succeeded intent of 1.00 USD that says it pays the 49.00 USD invoice
    await charge_directly(payments_deps, invoice, attempt=7, amount=100)
    # an intent of another invoice, in an event whose payload names this invoice
    await charge_directly(payments_deps, invoice, attempt=8, invoice_id="inv-acme-elsewhere")
    small, other = stripe_fake.events("payment_intent.succeeded")
    other["data"]["object"]["metadata"]["invoice_id"] = invoice.invoice_id
    decisions = [await handlers.handle_stripe_event(received(e), payments_deps)
                 for e in (small, other)]
    assert decisions == ["mismatch", "parked"]

    record = await payments_deps.store.invoice(invoice.invoice_id)
    assert record is not None and record.status == "failed"
    assert [type(e).__name__ for e in await outbox_events(mongo_db)] == ["PaymentFailed"]
    assert WEBHOOK_MISMATCHES.labels("amount")._value.get() == before + 1
    [audit] = await mongo_db["payments_audit"].find().to_list()
    assert (audit["invoice_id"], audit["reason"]) == (invoice.invoice_id, "amount")
    assert audit["stripe_event_id"] == small["id"]


def test_the_webhook_secret_has_no_default_and_the_ingress_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BILLING_STRIPE_WEBHOOK_SECRET", raising=False)
    settings = PaymentsSettings()
    assert settings.stripe_webhook_secret is None
    with pytest.raises(SystemExit, match="BILLING_STRIPE_WEBHOOK_SECRET"):
        WebhookIngress(settings)


async def test_the_payments_worker_refuses_to_start_without_a_webhook_secret(
    subprocess_env: dict[str, str]
) -> None:
    env = {k: v for k, v in subprocess_env.items() if k != "BILLING_STRIPE_WEBHOOK_SECRET"}
    for worker in ("payments", "stripe-webhooks"):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "run", worker, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2, err.decode()
        assert "BILLING_STRIPE_WEBHOOK_SECRET" in err.decode()
