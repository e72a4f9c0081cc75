"""The API's commands: `billing run api`, `billing keys create|list|revoke` and
`billing portal link`
(docs/api.md, "Authentication and keys")."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pymongo.errors import PyMongoError

from services.api.keys import InvalidKeySpec, KeyRecord, MongoKeyStore, issue_key
from services.api.settings import ApiSettings
from services.common.logs import configure_logging
from services.common.mongo import database, make_client
from services.common.runtime import run_worker

T = TypeVar("T")


def run_api_command() -> None:
    """Serve the Billing API on BILLING_API_HOST:BILLING_API_PORT (SIGTERM: finish in-flight
    requests, stop). Needs BILLING_COMMAND_SIGNING_KEY."""
    from services.api.server import serve_api

    settings = ApiSettings()
    try:
        settings.signing_key()
    except RuntimeError as exc:  # the invoicer's MissingSigningKey names the variable
        typer.echo(f"billing run api: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_json)
    run_worker(lambda stop: serve_api(settings, stop))


def _with_store(use: Callable[[MongoKeyStore], Awaitable[T]]) -> T:
    settings = ApiSettings()

    async def run() -> T:
        client = make_client(settings)
        try:
            return await use(MongoKeyStore(database(client, settings)))
        finally:
            await client.close()

    try:
        return asyncio.run(run())
    except PyMongoError as exc:
        typer.echo(f"billing keys: MongoDB did not answer ({type(exc).__name__}: "
                   f"{str(exc)[:200]})", err=True)
        raise typer.Exit(1) from None


def create(
    role: Annotated[str, typer.Option("--role", help="super | viewer | tenant | ingest")],
    name: Annotated[str, typer.Option("--name", help="what the key is for (shown in lists)")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="the tenant of a tenant key")
                      ] = None,
    source: Annotated[str | None, typer.Option(
        "--source", help="restrict an ingest key to CloudEvents with this source")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create an API key and print it. The key is shown only this once: only its hash is
    stored."""
    try:
        token, record = _with_store(lambda store: issue_key(
            store, role=role, name=name, tenant_id=tenant, source=source))
    except (InvalidKeySpec, ValueError) as exc:
        typer.echo(f"billing keys create: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps({**record.public(), "key": token}))
    else:
        typer.echo(token)
        typer.echo(f"{record.principal.key_id} ({role}) created: store the key now, it is not "
                   "shown again", err=True)


def list_keys(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the API keys (id, name, role, tenant, source, created, revoked); never a secret."""
    records: list[KeyRecord] = _with_store(lambda store: store.all())
    rows: list[dict[str, Any]] = [r.public() for r in records]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        scope = row["tenant_id"] or row["source"] or "-"
        typer.echo(f"{row['key_id']}  {row['role']:<7} {scope:<20} {state:<10} {row['name']}")


def revoke(key_id: Annotated[str, typer.Argument(help="the key id (key_...)")]) -> None:
    """Revoke a key: requests with it get 401 (within seconds on every instance)."""
    found = _with_store(lambda store: store.revoke(key_id, datetime.now(UTC)))
    if not found:
        typer.echo(f"billing keys revoke: no key {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{key_id} revoked")


def portal_link(
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant whose pages it opens")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print a single-use portal link for TENANT (valid for one hour; its address starts with
    BILLING_PORTAL_URL, default http://BILLING_API_HOST:BILLING_API_PORT)."""
    from services.api.portal.sessions import create_link
    from services.invoicer.api import current_config

    settings = ApiSettings()

    async def make() -> Any:
        client = make_client(settings)
        try:
            db = database(client, settings)
            if await current_config(db, tenant) is None:
                return None
            return await create_link(db, settings, tenant, "cli:billing portal link")
        finally:
            await client.close()

    try:
        link = asyncio.run(make())
    except PyMongoError as exc:
        typer.echo(f"billing portal link: MongoDB did not answer ({type(exc).__name__})",
                   err=True)
        raise typer.Exit(1) from None
    if link is None:
        typer.echo(f"billing portal link: no tenant {tenant!r}", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps({"tenant_id": tenant, "url": link.url,
                               "expires_at": link.expires_at.isoformat()}))
    else:
        typer.echo(link.url)
        typer.echo(f"opens {tenant}'s portal once, until {link.expires_at:%Y-%m-%d %H:%M} UTC",
                   err=True)


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Add `billing keys ...` to the root `app` and the API server to `run_app`."""
    run_app.command("api")(run_api_command)
    keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.",
                           no_args_is_help=True)
    keys_app.command("create")(create)
    keys_app.command("list")(list_keys)
    keys_app.command("revoke")(revoke)
    app.add_typer(keys_app, name="keys")
    portal_app = typer.Typer(help="The billing portal: single-use sign-in links.",
                             no_args_is_help=True)
    portal_app.command("link")(portal_link)
    app.add_typer(portal_app, name="portal")


def export_openapi(directory: Path) -> Path:
    """Write the API's OpenAPI 3.1 document to DIRECTORY/openapi.json; returns the path."""
    from services.api.app import create_app

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "openapi.json"
    document = create_app(ApiSettings()).openapi()
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path
