"""Commands of the invoicer service.

    billing run invoicer
    billing config apply FILE --actor ID --role ROLE
    billing cycle run --as-of INSTANT [--publish]
    billing cycle next-due --after INSTANT
    billing invoices issue --tenant T --period-end DATE [--as-of I] [--force --reason R --actor A]
    billing invoices list [--tenant T] [--status all|unpaid|paid] [--json]
    billing invoices show NUMBER [--json]
    billing invoices pdf NUMBER -o FILE
    billing invoices totals [--tenant T] [--json]
    billing invoices export [-o FILE]
    billing dashboard [--as-of INSTANT] [--json]
    billing invoices errors [--json]
    billing plans apply FILE [--dry-run] / billing plans list [--json] (plans_cli.py)
"""

import asyncio
import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from contracts.money import to_major_units
from services.common.cli import parse_instant
from services.common.kafka import ensure_topics
from services.common.logs import configure_logging
from services.common.runtime import run_worker
from services.common.worker import make_broker
from services.invoicer import plans_cli, reports
from services.invoicer.names import SERVICE
from services.invoicer.records import export_row
from services.invoicer.settings import InvoicerSettings

console = Console()


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _echo_mapping(data: dict[str, Any], as_json: bool) -> None:
    """Print `data` as JSON, or as `key: value` lines."""
    if as_json:
        _echo_json(data)
        return
    for key, value in data.items():
        typer.echo(f"{key}: {value}")


def _money(minor: int, currency: str) -> str:
    return f"{to_major_units(minor, currency)} {currency}"


async def _cycle(as_of: datetime, publish: bool, settings: InvoicerSettings) -> dict[str, Any]:
    from services.invoicer.schedule import run_cycle

    async with reports.open_store(settings) as store:
        await store.ensure_indexes()
        report = await run_cycle(store, as_of, settings.invoicer_issue_batch)
        published = await _relay(store, settings) if publish else 0
    return {"as_of": as_of.isoformat(), "issued": report.issued, "overdue": report.overdue,
            "published": published}


async def _relay(store: Any, settings: InvoicerSettings) -> int:
    from services.common.relay import outbox_relay
    from services.invoicer.names import OUTBOX, SERVICE

    await ensure_topics(settings)
    async with make_broker(settings, name="cycle-relay") as broker:
        relay = outbox_relay(broker, settings, store.db, OUTBOX, SERVICE)
        return await relay.drain()


def run_invoicer() -> None:
    """Run the invoicer worker (consumers, outbox relay, scheduled cycle)."""
    from services.invoicer.app import serve

    settings = InvoicerSettings()
    _require_signing_key(settings)
    configure_logging(settings.log_level, settings.log_json)
    run_worker(lambda stop: serve(stop, settings))

def config_apply(
    file: Path,
    actor: str = typer.Option(..., "--actor", help="operator user id"),
    role: str = typer.Option(..., "--role", help="operator role (super may configure)"),
) -> None:
    """Publish one BillingConfigSubmitted per tenant of FILE (tenants.json shape), signed
    with BILLING_COMMAND_SIGNING_KEY; each run is a new submission."""
    from services.invoicer.api import apply_config_file

    settings = InvoicerSettings()
    _require_signing_key(settings)
    submitted = asyncio.run(apply_config_file(settings, file, actor_id=actor, role=role))
    typer.echo(f"submitted {len(submitted)} configurations: "
               + ", ".join(f"{s.tenant_id} ({s.event_id})" for s in submitted))

def cycle_run(
    as_of: str = typer.Option(..., "--as-of", help="billing clock, ISO 8601 instant"),
    publish: bool = typer.Option(False, "--publish", help="also relay the outbox now"),
) -> None:
    """Run the cycle once at the given billing clock (catches up every due period)."""
    _echo_json(asyncio.run(_cycle(parse_instant(as_of), publish, InvoicerSettings())))

def cycle_next_due(after: str = typer.Option(..., "--after")) -> None:
    """Print the earliest instant after AFTER at which the cycle has work, or `none`."""
    found = asyncio.run(reports.next_due_after(InvoicerSettings(), parse_instant(after)))
    typer.echo(found.isoformat() if found else "none")

def invoices_issue(
    tenant: str = typer.Option(..., "--tenant"),
    period_end: str = typer.Option(..., "--period-end", help="local end date YYYY-MM-DD"),
    as_of: str | None = typer.Option(
        None, "--as-of", help="billing clock, ISO 8601 instant (default: now)"),
    force: bool = typer.Option(
        False, "--force", help="issue for a tenant that auto-generates (audited)"),
    reason: str | None = typer.Option(None, "--reason", help="why (required with --force)"),
    actor: str | None = typer.Option(None, "--actor", help="operator user id (with --force)"),
) -> None:
    """Issue the invoice of TENANT's period ending on PERIOD_END (operator-issued tenants).

    Refused with the reason (exit 1) when the period has not ended at the billing clock,
    would overlap an invoiced period or leave one unbilled, or the tenant auto-generates
    its invoices and --force is not given (docs/billing-periods.md, "Operator issue").
    """
    from services.invoicer.issue import Forced, IssueRefused, issue_for_period_end

    if force and not (reason and reason.strip() and actor):
        raise typer.BadParameter("--force needs --reason TEXT and --actor ID")
    forced = Forced(actor, reason) if force and actor and reason else None
    try:
        end = date.fromisoformat(period_end)
    except ValueError as exc:
        raise typer.BadParameter(f"not a date (YYYY-MM-DD): {period_end!r}") from exc
    clock = parse_instant(as_of) if as_of else None

    async def go() -> str | None:
        async with reports.open_store(InvoicerSettings()) as store:
            await store.ensure_indexes()
            return await issue_for_period_end(store, tenant, end, as_of=clock,
                                              forced=forced)

    try:
        number = asyncio.run(go())
    except (LookupError, IssueRefused) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(number or "already issued")

def invoices_list(
    tenant: str | None = typer.Option(None, "--tenant"),
    status: str = typer.Option("all", "--status", help="all | unpaid | paid"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List invoices by number."""
    async def go() -> list[dict[str, Any]]:
        async with reports.open_store(InvoicerSettings()) as store:
            return await reports.list_invoices(store, tenant, status)

    docs = asyncio.run(go())
    if as_json:
        _echo_json([export_row(d) for d in docs])
        return
    table = Table()
    for header in ("number", "tenant", "period", "issued", "due", "amount", "status"):
        table.add_column(header, no_wrap=header in ("number", "amount", "status"))
    for d in docs:
        row = export_row(d)
        table.add_row(d["invoice_number"], d["tenant_id"],
                      f"{row['period_start'][:10]}..{row['period_end'][:10]}", d["issue_date"],
                      d["due_date"], _money(int(d["amount"]), d["currency"]), d["status"])
    console.print(table)

def invoices_show(number: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one invoice with its line items."""
    doc = asyncio.run(_find(number))
    row = export_row(doc)
    if as_json:
        _echo_json(row)
        return
    console.print(f"[bold]{row['invoice_number']}[/bold]  {row['tenant_id']}  {row['status']}")
    console.print(f"period {row['period_start']} .. {row['period_end']}")
    console.print(f"issued {row['issue_date']}  due {row['due_date']}  paid {row['paid_date']}")
    table = Table("kind", "description", "quantity", "unit price", "amount")
    for li in row["line_items"]:
        table.add_row(li["kind"], li["description"], li["quantity"] or "",
                      li["unit_price"] or "", _money(li["amount"], row["currency"]))
    console.print(table)
    console.print(f"total {_money(row['amount'], row['currency'])}")

def invoices_pdf(
    number: str, output: Annotated[Path, typer.Option("-o", "--output")]
) -> None:
    """Write the invoice's PDF to OUTPUT."""
    from services.common.invoice_document import seller_of
    from services.common.invoice_pdf import render_invoice_pdf
    from services.invoicer.api import pdf_bytes
    from services.invoicer.document import pricing_of

    async def find() -> tuple[dict[str, Any], Any]:
        doc = await _find(number)
        async with reports.open_store(InvoicerSettings()) as store:
            return doc, await pricing_of(store, doc)

    doc, pricing = asyncio.run(find())
    output.write_bytes(pdf_bytes(doc, render_invoice_pdf, pricing=pricing,
                                 seller=seller_of(InvoicerSettings())))
    typer.echo(str(output))

def invoices_totals(
    tenant: str | None = typer.Option(None, "--tenant"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Outstanding balance, total paid (minor units per currency), overdue count, total."""
    async def go() -> dict[str, Any]:
        async with reports.open_store(InvoicerSettings()) as store:
            return reports.totals(await reports.list_invoices(store, tenant))

    _echo_mapping(asyncio.run(go()), as_json)

def invoices_export(
    output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
) -> None:
    """Write every invoice as the demo's invoices.json entries (stdout without -o)."""
    rows = asyncio.run(reports.export_invoices(InvoicerSettings()))
    text = json.dumps(rows, indent=2)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n")

def invoices_errors(as_json: bool = typer.Option(False, "--json")) -> None:
    """Periods the billing cycle could not invoice (open billing errors), with the reason;
    an error is resolved when its period is issued (docs/invoicing.md)."""
    async def go() -> list[dict[str, Any]]:
        async with reports.open_store(InvoicerSettings()) as store:
            return await reports.billing_error_rows(store)

    rows = asyncio.run(go())
    if as_json:
        _echo_json(rows)
        return
    table = Table()
    for header in ("tenant", "period", "reason", "attempts", "waiting", "detail"):
        table.add_column(header, no_wrap=header != "detail")
    for r in rows:
        table.add_row(r["tenant_id"], f"{r['period_start'][:10]}..{r['period_end'][:10]}",
                      r["reason"], str(r["attempts"]), str(r["later_periods_waiting"]),
                      r["detail"])
    console.print(table)

def dashboard(
    as_of: str | None = typer.Option(None, "--as-of", help="month of this instant"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """total_tenants, pending_invoices, overdue_invoices, monthly_revenue (minor units)."""
    async def go() -> dict[str, Any]:
        async with reports.open_store(InvoicerSettings()) as store:
            return await reports.dashboard(store, parse_instant(as_of) if as_of else None)

    _echo_mapping(asyncio.run(go()), as_json)


def _require_signing_key(settings: InvoicerSettings) -> None:
    """Exit 2 with the reason when `BILLING_COMMAND_SIGNING_KEY` is unset or too short."""
    from services.invoicer.settings import MissingSigningKey

    try:
        settings.signing_key()
    except MissingSigningKey as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


async def _find(number: str) -> dict[str, Any]:
    async with reports.open_store(InvoicerSettings()) as store:
        doc = await reports.find_invoice(store, number)
    if doc is None:
        typer.echo(f"error: no invoice {number}", err=True)
        raise typer.Exit(1)
    return doc


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add this service's commands to the root `app` and its worker to `run_app`."""
    config_app = typer.Typer(help="Tenant billing configuration.")
    cycle_app = typer.Typer(help="The billing cycle.")
    invoices_app = typer.Typer(help="Invoices: issue, list, show, PDF, totals.")
    app.add_typer(config_app, name="config")
    app.add_typer(cycle_app, name="cycle")
    app.add_typer(invoices_app, name="invoices")
    run_app.command(SERVICE)(run_invoicer)
    config_app.command("apply")(config_apply)
    cycle_app.command("run")(cycle_run)
    cycle_app.command("next-due")(cycle_next_due)
    invoices_app.command("issue")(invoices_issue)
    invoices_app.command("list")(invoices_list)
    invoices_app.command("show")(invoices_show)
    invoices_app.command("pdf")(invoices_pdf)
    invoices_app.command("totals")(invoices_totals)
    invoices_app.command("export")(invoices_export)
    invoices_app.command("errors")(invoices_errors)
    app.command("dashboard")(dashboard)
    plans_cli.register(app)
