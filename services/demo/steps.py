"""The demo's calls into each service's public API (one place to read how the demo drives the
platform). Everything here is an operator action or a read of a service's documented API."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from services.common.mongo import database, make_client
from services.common.settings import CommonSettings
from services.invoicer import api as invoicer
from services.payments import api as payments
from services.usage_collector import api as usage

Say = Callable[[str], None]


def extra_environment(webhook_port: int) -> dict[str, str]:
    """Service settings the demo sets for its workers."""
    return {
        "BILLING_STRIPE_WEBHOOKS_HOST": "127.0.0.1",
        "BILLING_STRIPE_WEBHOOKS_PORT": str(webhook_port),
    }


def _tenants(tenants_file: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(tenants_file.read_text())["tenants"]
    return data


async def apply_tenants(settings: CommonSettings, tenants_file: Path) -> list[str]:
    """Publish every tenant's configuration as the file's `super` actor; wait until the
    invoicer has accepted each. Returns the tenant ids."""
    actor = json.loads(tenants_file.read_text())["actor"]
    submitted = await invoicer.apply_config_file(
        invoicer.InvoicerSettings(), tenants_file, actor_id=actor["user_id"], role=actor["role"]
    )
    await invoicer.wait_config_applied(settings, submitted, timeout=120)
    return [s.tenant_id for s in submitted]


async def setup_payments(settings: CommonSettings, tenants_file: Path, webhook_port: int) -> None:
    """Attach each tenant's payment method in Stripe and register the webhook ingress."""
    pay = payments.PaymentsSettings()
    for tenant in _tenants(tenants_file):
        if tenant.get("payment_method"):
            await payments.setup_payment_method(pay, tenant["tenant_id"], tenant["payment_method"])
    await payments.register_webhook_endpoint(
        pay, f"http://127.0.0.1:{webhook_port}{pay.stripe_webhooks_path}"
    )


async def import_usage(
    settings: CommonSettings, trace: Path, tenants_file: Path, *, progress: bool
) -> dict[str, Any]:
    """Publish the trace's usage events; returns the import report as a dict."""
    report = await usage.import_bitbrains(settings, trace, tenants_file, progress=progress)
    return {
        "files": report.files,
        "rows_read": report.rows_read,
        "events_read": report.events_published + report.rows_dead_lettered,
        "events_published": report.events_published,
        "rows_skipped": report.rows_skipped,
        "rows_dead_lettered": report.rows_dead_lettered,
        "max_time": report.max_time,
    }


def default_as_of(report: dict[str, Any]) -> datetime:
    """Without `--as-of`: the first midnight (UTC) after the last usage event."""
    last: datetime | None = report.get("max_time")
    base = (last or datetime.now(UTC)).astimezone(UTC)
    return datetime.combine(base.date() + timedelta(days=1), time(0), tzinfo=UTC)


async def clock_start(tenants_file: Path) -> datetime:
    """The earliest `effective_from`, at 00:00 in its tenant's time zone."""
    return min(
        datetime.combine(
            datetime.fromisoformat(t["effective_from"]).date(),
            time(0),
            tzinfo=ZoneInfo(t.get("timezone", "UTC")),
        )
        for t in _tenants(tenants_file)
    )


async def next_due(settings: CommonSettings, after: datetime) -> datetime | None:
    """The earliest instant after `after` where the invoicer or the dunning has work."""
    found = [
        await invoicer.next_due_after(settings, after),
        await payments.next_dunning_after(payments.PaymentsSettings(), after),
    ]
    due = [d for d in found if d is not None]
    return min(due) if due else None


async def run_clock(settings: CommonSettings, at: datetime, say: Say) -> None:
    """Run the billing cycle and the dunning retries with the billing clock at `at`."""
    cycle = await invoicer.run_cycle(settings, at)
    retried = await payments.run_dunning(payments.PaymentsSettings(), at)
    done = [counted(len(cycle.get("issued", [])), "invoice", "issued"),
            counted(len(cycle.get("overdue", [])), "invoice", "now overdue"),
            counted(retried, "payment", "retried")]
    if any(done):
        say(f"billing clock at {at.isoformat()}: {', '.join(d for d in done if d)}")


def counted(n: int, noun: str, what: str) -> str:
    """`2 invoices issued`, `1 payment retried`, "" for none."""
    return f"{n} {noun}{'' if n == 1 else 's'} {what}" if n else ""


async def export_invoices(settings: CommonSettings) -> list[dict[str, Any]]:
    """Every invoice in the demo's `invoices.json` shape."""
    return await invoicer.export_invoices(settings)


async def write_pdfs(settings: CommonSettings, directory: Path) -> int:
    """Write `<invoice_number>.pdf` for every invoice; returns how many."""
    directory.mkdir(parents=True, exist_ok=True)
    return await invoicer.write_invoice_pdfs(settings, directory)


async def collector_totals(settings: CommonSettings) -> dict[str, int]:
    """The collector's exact counts (aggregated, duplicates, dead_lettered)."""
    client = make_client(settings)
    try:
        return await usage.collector_stats(database(client, settings))
    finally:
        await client.close()


def payments_settings() -> payments.PaymentsSettings:
    """The payments service's settings (Stripe API base and key) from the environment."""
    return payments.PaymentsSettings()
