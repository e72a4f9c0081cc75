"""Commands of the usage_collector service.

    billing run usage-collector
    billing usage publish FILE.jsonl
    billing usage import-trace bitbrains DIR --tenants FILE [--trace-name NAME] [--no-progress]
    billing usage summary --tenant T --from INSTANT --to INSTANT [--json]
    billing usage stats [--json]
"""

import asyncio
import json
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from services.common.cli import parse_instant
from services.common.logs import configure_logging
from services.common.mongo import database, make_client
from services.common.runtime import run_worker
from services.usage_collector.settings import UsageSettings

console = Console()


class TraceFormat(StrEnum):
    """Trace formats `import-trace` understands."""

    bitbrains = "bitbrains"


def run_collector_command() -> None:
    """Consume usage events and aggregate them into MongoDB (SIGTERM: flush, commit, leave)."""
    from services.usage_collector.app import run_collector

    settings = UsageSettings()
    configure_logging(settings.log_level, settings.log_json)
    run_worker(lambda stop: run_collector(settings, stop))


def publish(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Publish FILE's CloudEvents JSON lines to the usage topic, keyed by subject."""
    from services.usage_collector.importer import publish_jsonl

    count = asyncio.run(publish_jsonl(UsageSettings(), file))
    console.print(f"published {count} events")


def import_trace(
    fmt: Annotated[TraceFormat, typer.Argument(metavar="FORMAT", help="bitbrains")],
    directory: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
    tenants: Annotated[Path, typer.Option("--tenants", exists=True, dir_okay=False)],
    trace_name: Annotated[
        str | None, typer.Option(help="only usage sources of this trace (default: match VM ids)")
    ] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Turn a trace DIRECTORY (<month>/<vm>.csv) into usage events, per ../shared/data/README.md."""
    from services.usage_collector.importer import import_bitbrains

    report = asyncio.run(
        import_bitbrains(
            UsageSettings(), directory, tenants, progress=progress, trace_name=trace_name
        )
    )
    console.print(
        f"{report.files} files, {report.rows_read} rows: {report.events_published} events "
        f"published, {report.rows_skipped} rows skipped (VM without tenant), "
        f"{report.rows_dead_lettered} rows dead-lettered; events from {report.min_time} "
        f"to {report.max_time}"
    )


async def _summary(tenant: str, start: datetime, end: datetime) -> list[Any]:
    from services.usage_collector.query import usage_totals

    settings = UsageSettings()
    client = make_client(settings)
    try:
        return await usage_totals(database(client, settings), tenant, start, end)
    finally:
        await client.close()


def summary(
    tenant: Annotated[str, typer.Option("--tenant")],
    start: Annotated[str, typer.Option("--from", help="interval start (inclusive), ISO 8601")],
    end: Annotated[str, typer.Option("--to", help="interval end (exclusive), ISO 8601")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Quantity per service and meter of TENANT in [FROM, TO) (exact on quarter-hours)."""
    totals = asyncio.run(_summary(tenant, parse_instant(start), parse_instant(end)))
    if as_json:
        rows = [
            {"service": t.service, "meter": t.meter, "aggregation": t.aggregation,
             "quantity": str(t.quantity), "events": t.events,
             "last_changed": t.last_changed.isoformat() if t.last_changed else None}
            for t in totals
        ]
        typer.echo(json.dumps({"tenant_id": tenant, "from": start, "to": end, "usage": rows}))
        return
    table = Table(title=f"usage of {tenant} in [{start}, {end})")
    for column in ("service", "meter", "aggregation", "quantity", "events"):
        table.add_column(column, justify="right" if column in ("quantity", "events") else "left")
    for t in totals:
        table.add_row(t.service, t.meter, t.aggregation, str(t.quantity), str(t.events))
    console.print(table)


async def _stats() -> dict[str, int]:
    from services.usage_collector.adapters.store import collector_stats

    settings = UsageSettings()
    client = make_client(settings)
    try:
        return await collector_stats(database(client, settings))
    finally:
        await client.close()


def stats(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The collector's totals: events aggregated, duplicates, dead-lettered."""
    totals = asyncio.run(_stats())
    typer.echo(json.dumps(totals) if as_json else "  ".join(f"{k}={v}" for k, v in totals.items()))


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add this service's commands to the root `app` and its worker to `run_app`."""
    run_app.command("usage-collector")(run_collector_command)
    usage = typer.Typer(help="Usage events: publish, import traces, summaries.",
                        no_args_is_help=True)
    usage.command("publish")(publish)
    usage.command("import-trace")(import_trace)
    usage.command("summary")(summary)
    usage.command("stats")(stats)
    app.add_typer(usage, name="usage")
