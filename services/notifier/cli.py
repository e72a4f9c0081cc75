"""Commands of the notifier service: `billing run notifier`."""

import typer

from services.common.logs import configure_logging
from services.common.runtime import run_worker


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add this service's commands to the root `app` and its worker to `run_app`."""

    @run_app.command("notifier")
    def run_notifier_command() -> None:
        """Email tenants about their invoices (SMTP per BILLING_SMTP_*), until SIGTERM."""
        from services.notifier.app import run_notifier
        from services.notifier.settings import NotifierSettings

        settings = NotifierSettings()
        configure_logging(settings.log_level, settings.log_json)
        run_worker(lambda stop: run_notifier(stop, settings))
