"""Commands of the payments service.

    billing run payments
    billing run stripe-webhooks
    billing payments setup --tenant T --payment-method pm_...
    billing payments record --invoice NUMBER --method ach|bank_transfer --reference REF
                            [--paid-on DATE]
    billing payments dunning --as-of INSTANT
    billing payments next-due --after INSTANT
    billing payments webhook-endpoint --url URL
    billing payments relay
"""

import asyncio
import logging
from datetime import date
from enum import StrEnum
from typing import Annotated

import typer

from services.common.cli import parse_instant
from services.common.errors import BillingError
from services.common.logs import configure_logging
from services.common.runtime import run_worker
from services.payments.names import SERVICE, WEBHOOKS_SERVICE
from services.payments.settings import PaymentsSettings


class ManualMethod(StrEnum):
    """How a payment outside Stripe was made."""

    ach = "ach"
    bank_transfer = "bank_transfer"


def _quiet_http_logs() -> None:
    """The SDK and httpx log every request at INFO; the worker's own logs say what matters."""
    for name in ("stripe", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _fail(exc: BillingError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


def _settings_with_secret() -> PaymentsSettings:
    """Settings of a worker that verifies Stripe webhooks: exit 2 without the secret."""
    settings = PaymentsSettings()
    try:
        settings.require_webhook_secret()
    except SystemExit as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    return settings


def run_payments_command() -> None:
    """Charge issued invoices, reconcile Stripe events, run dunning (SIGTERM: finish, leave).
    Needs BILLING_STRIPE_WEBHOOK_SECRET."""
    from services.payments.app import run_payments

    settings = _settings_with_secret()
    configure_logging(settings.log_level, settings.log_json)
    _quiet_http_logs()
    run_worker(lambda stop: run_payments(settings, stop))


def run_webhooks_command() -> None:
    """Receive Stripe webhooks, verify their signatures, publish them to Kafka. Needs
    BILLING_STRIPE_WEBHOOK_SECRET."""
    from services.payments.webhooks import serve_webhooks

    settings = _settings_with_secret()
    configure_logging(settings.log_level, settings.log_json)
    _quiet_http_logs()
    run_worker(lambda stop: serve_webhooks(settings, stop))


def setup(
    tenant: Annotated[str, typer.Option("--tenant")],
    payment_method: Annotated[str, typer.Option("--payment-method", help="pm_... or a test "
                                                "token such as pm_card_visa")],
) -> None:
    """Make PAYMENT_METHOD the tenant's default (creates its Stripe customer if needed).

    A card Stripe declines on attaching (e.g. pm_card_chargeDeclined) exits 1 with Stripe's
    decline code; the tenant keeps the method it had."""
    from services.payments.api import setup_payment_method_described

    try:
        described = asyncio.run(
            setup_payment_method_described(PaymentsSettings(), tenant, payment_method))
    except BillingError as exc:
        _fail(exc)
    typer.echo(f"{tenant}: default payment method {described}")


def record(
    invoice: Annotated[str, typer.Option("--invoice", help="invoice number INV-YYYY-NNNN")],
    method: Annotated[ManualMethod, typer.Option("--method")],
    reference: Annotated[str, typer.Option("--reference")],
    paid_on: Annotated[str | None, typer.Option(
        "--paid-on", help="YYYY-MM-DD, a day in the tenant's time zone")] = None,
) -> None:
    """Record a payment made outside Stripe; publishes PaymentSucceeded."""
    from services.payments.api import record_manual_payment

    day = date.fromisoformat(paid_on) if paid_on else None
    try:
        rec = asyncio.run(record_manual_payment(PaymentsSettings(), invoice, method.value,
                                                reference, day))
    except BillingError as exc:
        _fail(exc)
    typer.echo(f"{rec.invoice_number} paid by {rec.payment_method} ({rec.payment_reference})")


def dunning(as_of: Annotated[str, typer.Option("--as-of", help="ISO 8601 instant")]) -> None:
    """Retry the failed invoices due at AS_OF; prints the number of attempts."""
    from services.payments.api import run_dunning

    try:
        made = asyncio.run(run_dunning(PaymentsSettings(), parse_instant(as_of)))
    except BillingError as exc:
        _fail(exc)
    typer.echo(str(made))


def next_due(after: Annotated[str, typer.Option("--after", help="ISO 8601 instant")]) -> None:
    """Print the next scheduled retry after AFTER (ISO 8601), or nothing (exit 1)."""
    from services.payments.api import next_dunning_after

    found = asyncio.run(next_dunning_after(PaymentsSettings(), parse_instant(after)))
    if found is None:
        raise typer.Exit(1)
    typer.echo(found.isoformat())


def webhook_endpoint(url: Annotated[str, typer.Option("--url")]) -> None:
    """Register URL (the stripe-webhooks ingress) with Stripe for every event; prints its id."""
    from services.payments.api import register_webhook_endpoint

    try:
        typer.echo(asyncio.run(register_webhook_endpoint(PaymentsSettings(), url)))
    except BillingError as exc:
        _fail(exc)


def relay() -> None:
    """Publish pending payments-outbox entries now (the worker does this continuously)."""
    from services.payments.api import relay_outbox

    typer.echo(str(asyncio.run(relay_outbox(PaymentsSettings()))))


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add this service's commands to the root `app` and its worker to `run_app`."""
    run_app.command(SERVICE)(run_payments_command)
    run_app.command(WEBHOOKS_SERVICE)(run_webhooks_command)
    payments_app = typer.Typer(help="Payments: payment methods, manual payments, dunning.",
                               no_args_is_help=True)
    payments_app.command("setup")(setup)
    payments_app.command("record")(record)
    payments_app.command("dunning")(dunning)
    payments_app.command("next-due")(next_due)
    payments_app.command("webhook-endpoint")(webhook_endpoint)
    payments_app.command("relay")(relay)
    app.add_typer(payments_app, name="payments")
