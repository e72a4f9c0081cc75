"""The `billing` command line: one entry point for workers, operators and the demo.

Each service owns its commands in `services/<name>/cli.py`; this module only wires them.
"""

from pathlib import Path

import typer

from contracts.export import export
from services.api import cli as api_cli
from services.demo.cli import register as register_demo
from services.devstack.cli import app as dev_app
from services.invoicer import cli as invoicer_cli
from services.notifier import cli as notifier_cli
from services.payments import cli as payments_cli
from services.usage_collector import cli as usage_cli

app = typer.Typer(
    help="Event-driven, multi-tenant billing platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
run_app = typer.Typer(help="Run one worker as this process (scale by running more).")
contracts_app = typer.Typer(help="Event contracts for downstream systems.")


@contracts_app.command("export")
def contracts_export(directory: Path) -> None:
    """Write one JSON Schema per event, an AsyncAPI document and the HTTP API's OpenAPI
    document to DIRECTORY."""
    for path in export(directory):
        typer.echo(str(path))
    typer.echo(str(api_cli.export_openapi(directory)))


app.add_typer(dev_app, name="dev")
app.add_typer(contracts_app, name="contracts")
app.add_typer(run_app, name="run")
usage_cli.register(app, run_app)
invoicer_cli.register(app, run_app)
payments_cli.register(app, run_app)
notifier_cli.register(app, run_app)
api_cli.register(app, run_app)

register_demo(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
