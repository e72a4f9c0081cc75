"""Argument types shared by the service CLIs."""

from datetime import UTC, datetime

import typer


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant (`2013-10-01T00:00:00Z`, `2013-10-01`); without an offset it is
    taken as UTC. Raises `typer.BadParameter` for anything else."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 instant: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
