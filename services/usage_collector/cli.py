"""Commands of the usage_collector service."""

import typer


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add this service's commands to the root `app` and its worker to `run_app`."""
