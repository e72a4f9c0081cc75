"""`billing demo`: the whole platform on the embedded stack (see `services.demo.runner`)."""

import asyncio
import json
from pathlib import Path

import typer

from services.common.cli import parse_instant
from services.demo.api_access import summary_lines
from services.demo.chaos import ChaosOptions
from services.demo.runner import Demo, DemoOptions
from services.demo.sample import SAMPLE_AS_OF, write_sample


def demo(
    tenants: Path | None = typer.Option(
        None, "--tenants", help="tenants file (tenants.json shape)"
    ),
    trace: Path | None = typer.Option(None, "--trace", help="Bitbrains-format trace directory"),
    as_of: str | None = typer.Option(
        None, "--as-of", help="move the billing clock to this instant"
    ),
    out: Path = typer.Option(Path("demo-out"), "--out", help="output folder"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON on stdout"),
    settle_timeout: float = typer.Option(300.0, help="seconds to wait for each stop to settle"),
    chaos: bool = typer.Option(
        False,
        "--chaos",
        help="inject faults (SIGKILL of each worker kind, a MongoDB restart, a broker link cut, "
        "poison messages), then replay every topic from offset 0 (docs/operations.md)",
    ),
    kills: int = typer.Option(1, "--kills", min=0, help="with --chaos: kills per kind and phase"),
    random_state: int = typer.Option(
        0, "--random-state", help="with --chaos: state of the fault plan's random generator"
    ),
    collectors: int | None = typer.Option(
        None, "--collectors", min=1, help="usage collectors in one group (1; 2 with --chaos)"
    ),
    keep_running: bool = typer.Option(
        False, "--keep-running",
        help="after the run, leave the stack, the workers and the API running until Ctrl-C "
        "(SIGINT) or SIGTERM, and print example curl lines for every endpoint",
    ),
) -> None:
    """Run every worker and the Billing API as their own processes on real usage and write
    invoices, PDFs, emails, dead letters, API keys (`api-keys.json`) and a summary to OUT.
    Exits 0 only if everything settled. A worker that exits is restarted (counted in
    summary.json's `restarts`)."""
    if (tenants is None) != (trace is None):
        raise typer.BadParameter("--tenants and --trace go together")
    out.mkdir(parents=True, exist_ok=True)
    instant = parse_instant(as_of) if as_of else None
    if tenants is None or trace is None:
        tenants, trace = write_sample(out / "input")
        instant = instant or parse_instant(SAMPLE_AS_OF)
    options = DemoOptions(
        tenants=tenants.resolve(),
        trace=trace.resolve(),
        as_of=instant,
        out=out.resolve(),
        settle_timeout=settle_timeout,
        quiet=False,
        collectors=collectors or (2 if chaos else 1),
        chaos=ChaosOptions(kills=kills, random_state=random_state)
        if chaos
        else None,
        keep_running=keep_running,
    )
    result = asyncio.run(Demo(options).run())
    if as_json:
        typer.echo(json.dumps(result.summary, indent=2))
    else:
        typer.echo(
            f"wrote {out}/invoices.json, invoices/, emails/, dead-letters.jsonl, summary.json"
        )
        if result.api is not None:
            for line in summary_lines(result.api, (out / "api-keys.json").resolve()):
                typer.echo(line)
            typer.echo("the API stopped with the demo; --keep-running leaves it and the "
                       "workers running")
    if result.unsettled or not result.summary:
        for problem in result.unsettled or ["the demo did not complete"]:
            typer.echo(f"not settled: {problem}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `billing demo` to the root CLI."""
    app.command("demo")(demo)
