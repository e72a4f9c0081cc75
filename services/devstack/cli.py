"""`billing dev up | status | env | down`: the embedded stack for development and tests.

`eval "$(billing dev env)"` points a shell at the running stack, so that `billing run <worker>`
and every other command in it use the stack (docs/operations.md#the-embedded-stack).
"""

import json
import shlex
from pathlib import Path

import typer

from services.devstack.stack import EmbeddedStack, StackError

app = typer.Typer(help="Run the embedded Kafka, MongoDB, SMTP and Stripe-fake servers locally.")
DirOption = typer.Option(Path(".billing"), "--dir", help="state directory")


@app.command()
def up(directory: Path = DirOption, timeout: float = typer.Option(60.0)) -> None:
    """Start the stack (idempotent) and print the BILLING_ settings for it."""
    stack = EmbeddedStack(directory)
    try:
        state = stack.up(timeout=timeout)
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for key, value in sorted(state.env(stack.directory).items()):
        typer.echo(f"{key}={value}")
    typer.echo(f"# written to {stack.directory / 'dev.env'}", err=True)


@app.command()
def status(directory: Path = DirOption) -> None:
    """Show each server's pid, port and whether it runs; exit 1 if any is down."""
    info = EmbeddedStack(directory).status()
    typer.echo(json.dumps(info, indent=2))
    if not info or not all(c["running"] for c in info.values()):
        raise typer.Exit(1)


@app.command()
def env(directory: Path = DirOption) -> None:
    """Print `export BILLING_...=...` lines for the running stack (for `eval`); exit 1 if it
    is not running."""
    stack = EmbeddedStack(directory)
    info = stack.status()
    if not info or not all(c["running"] for c in info.values()):
        typer.echo(f"error: no running stack in {stack.directory} (billing dev up)", err=True)
        raise typer.Exit(1)
    for key, value in sorted(stack.load().env(stack.directory).items()):
        typer.echo(f"export {key}={shlex.quote(value)}")


@app.command()
def down(directory: Path = DirOption) -> None:
    """Stop exactly the processes `up` started."""
    stopped = EmbeddedStack(directory).down()
    typer.echo("stopped: " + (", ".join(stopped) if stopped else "nothing"))
