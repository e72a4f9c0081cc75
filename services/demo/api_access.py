"""The Billing API in the demo: `billing run api` as one more worker process, the keys the demo
creates for it (`OUT/api-keys.json`), the curl lines and the portal links
(`services.demo.portal_links`) `--keep-running` prints.

`api-keys.json`: `{url, super, viewer, ingest, tenants: {tenant_id: key}}`: one bearer key per
role and one `tenant` key per tenant of the run (docs/api.md explains the roles). The demo's
stack is local and short-lived; the file is written readable by its owner only.
"""

import asyncio
import contextlib
import json
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.api import api as billing_api
from services.demo import portal_links
from services.demo.processes import WorkerSet
from services.demo.supervisor import Supervisor
from services.devstack.api import free_port

#: The worker kind and name of the API process (`billing run api`).
API_KIND = "api"
KEYS_FILE = "api-keys.json"


def api_environment(port: int) -> dict[str, str]:
    """Settings of the demo's API process: it listens on 127.0.0.1:`port`."""
    return {"BILLING_API_HOST": "127.0.0.1", "BILLING_API_PORT": str(port)}


@dataclass
class ApiKeys:
    """The demo's API keys (bearer tokens) and the API's base URL."""

    url: str
    super: str
    viewer: str
    ingest: str
    tenants: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The content of `api-keys.json`."""
        return {"url": self.url, "super": self.super, "viewer": self.viewer,
                "ingest": self.ingest, "tenants": dict(self.tenants)}


def start_api(env: dict[str, str], log_dir: Path) -> tuple[WorkerSet, int]:
    """Start `billing run api` (its own set, so that the replay's stop of the consumers leaves
    it running) on a free port; returns the set and the port. Its log: `<log_dir>/api.log`."""
    port = free_port()
    workers = WorkerSet(env, log_dir)
    workers.start(API_KIND, {**api_environment(port), "BILLING_OPS_PORT": str(free_port())})
    return workers, port


async def create_keys(db: AsyncDatabase[dict[str, Any]], url: str,
                      tenant_ids: Sequence[str]) -> ApiKeys:
    """One `super`, one `viewer`, one `ingest` key and a `tenant` key per tenant, in `db`."""

    async def key(role: str, tenant_id: str | None = None) -> str:
        name = f"demo {role}" + (f" {tenant_id}" if tenant_id else "")
        return await billing_api.create_key(db, role=role, name=name, tenant_id=tenant_id)

    return ApiKeys(url=url, super=await key("super"), viewer=await key("viewer"),
                   ingest=await key("ingest"),
                   tenants={t: await key("tenant", t) for t in tenant_ids})


async def issue_keys(db: AsyncDatabase[dict[str, Any]], url: str, tenant_ids: Sequence[str],
                     path: Path, say: Callable[[str], None]) -> ApiKeys:
    """`create_keys`, then `write_keys` to `path`; says where they are."""
    keys = await create_keys(db, url, tenant_ids)
    write_keys(keys, path)
    say(f"API at {url}; keys in {path}")
    return keys


def first_invoice(invoices_file: Path, tenant_id: str | None) -> str | None:
    """The number of `tenant_id`'s first invoice in the demo's `invoices.json` (else the first
    invoice's), None when there is none or no such file."""
    try:
        invoices = json.loads(invoices_file.read_text())
    except (OSError, ValueError):
        return None
    own = [i for i in invoices if i.get("tenant_id") == tenant_id] or invoices
    return str(own[0]["invoice_number"]) if own else None


async def until_stopped() -> None:
    """Return at the first SIGINT or SIGTERM (Ctrl-C)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)


async def keep_running(worker_sets: Sequence[WorkerSet], keys: ApiKeys | None, keys_file: Path,
                       out: Path, as_of: datetime | None, say: Callable[[str], None]) -> None:
    """`billing demo --keep-running`: print how to reach the API (plain lines, to copy) and
    the portal (sign-in page, one single-use link per tenant, also written to
    `OUT/portal-links.json` before anything says it keeps running), then leave the stack, the
    workers and the API running, supervised, until SIGINT or SIGTERM.
    The caller stops everything afterwards."""
    if keys is not None:
        invoice = first_invoice(out / "invoices.json", next(iter(keys.tenants), None))
        lines = [*summary_lines(keys, keys_file), "",
                 *curl_lines(keys, keys_file, invoice, as_of)]
        if keys.tenants:
            links_file = out / portal_links.LINKS_FILE
            links = await portal_links.create_links(billing_api.ApiSettings(), keys.url,
                                                    list(keys.tenants))
            portal_links.write_links(links, links_file)
            lines += ["", *portal_links.link_lines(links, keys_file, links_file)]
        print("\n".join(lines), file=sys.stderr, flush=True)
    say("everything keeps running; Ctrl-C (SIGINT) or SIGTERM stops it")
    live = [ws for ws in worker_sets if not ws.stopping]
    async with contextlib.AsyncExitStack() as stack:
        for ws in live:
            await stack.enter_async_context(Supervisor(ws, say).running())
        await until_stopped()


def write_keys(keys: ApiKeys, path: Path) -> None:
    """Write `keys` to `path` (JSON, mode 0600)."""
    portal_links.write_private_json(keys.as_json(), path)


def summary_lines(keys: ApiKeys, keys_file: Path) -> list[str]:
    """What the demo's summary says about the API: its URL, the viewer key, the keys file."""
    return [f"API at {keys.url} (docs: {keys.url}/docs)",
            f"viewer key: {keys.viewer}",
            f"every key (super, viewer, ingest, one per tenant): {keys_file}"]


def _event_time(as_of: datetime | None) -> str:
    moment = (as_of or datetime.now(UTC)).astimezone(UTC) - timedelta(hours=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def curl_lines(keys: ApiKeys, keys_file: Path, invoice_number: str | None = None,
               as_of: datetime | None = None) -> list[str]:
    """Shell lines a user can paste to call each endpoint family of the running API with the
    run's keys and tenants: variables first, then one curl per endpoint. The sample usage
    event is dated an hour before `as_of` (the billing clock at the end of the run)."""
    tenant = next(iter(keys.tenants), "TENANT_ID")
    invoice = invoice_number or "INVOICE_NUMBER"
    tenant_key = keys.tenants.get(tenant, "TENANT_KEY")
    cloudevent = json.dumps({
        "specversion": "1.0", "id": "curl-1", "source": "curl", "type": "billing.usage",
        "subject": "@TENANT@", "time": _event_time(as_of),
        "data": {"meter": "cpu_hours", "quantity": "1.5", "service": "curl"},
    }, separators=(",", ":"))
    # double-quoted for the shell, so that $TENANT expands
    event = '"' + cloudevent.replace('"', '\\"').replace("@TENANT@", "$TENANT") + '"'
    q = shlex.quote
    get_viewer = 'curl -s -H "Authorization: Bearer $VIEWER"'
    post_super = ('curl -s -X POST -H "Authorization: Bearer $SUPER" '
                  "-H 'Content-Type: application/json'")
    return [
        f"# every key is in {keys_file}",
        f"export API={q(keys.url)} VIEWER={q(keys.viewer)} SUPER={q(keys.super)} "
        f"INGEST={q(keys.ingest)} TENANT_KEY={q(tenant_key)} TENANT={q(tenant)}",
        f"{get_viewer} $API/v1/tenants",
        f'{get_viewer} "$API/v1/tenants/$TENANT"',
        f'{get_viewer} "$API/v1/tenants/$TENANT/billing-config"',
        f'{get_viewer} "$API/v1/tenants/$TENANT/balance"',
        f'{get_viewer} "$API/v1/tenants/$TENANT/usage?range=last_month"',
        f'{get_viewer} "$API/v1/invoices?tenant_id=$TENANT&status=all"',
        f'{get_viewer} "$API/v1/invoices/{invoice}"',
        f'{get_viewer} -o {q(invoice + ".pdf")} "$API/v1/invoices/{invoice}/pdf"',
        f"{get_viewer} $API/v1/dashboard",
        'curl -s -H "Authorization: Bearer $TENANT_KEY" "$API/v1/invoices?status=unpaid"',
        'curl -s -H "Authorization: Bearer $SUPER" "$API/v1/audit?limit=20"',
        f"{post_super} -d '{{\"amount\": 1000, \"reason\": \"goodwill\"}}' "
        '"$API/v1/tenants/$TENANT/credits"',
        f'CURRENCY=$({get_viewer} "$API/v1/tenants/$TENANT" | python3 -c '
        + q('import json, sys; print(json.load(sys.stdin)["currency"])') + ")",
        f'{post_super} -d "{{\\"code\\": \\"Welcome2026xQ\\", \\"amount_off\\": 500, '
        '\\"currency\\": \\"$CURRENCY\\", \\"duration\\": \\"once\\"}" $API/v1/coupons',
        f"{post_super} -d '{{\"code\": \"Welcome2026xQ\"}}' \"$API/v1/tenants/$TENANT/coupon\"",
        # the configuration in force, submitted again unchanged: a new version
        f'{get_viewer} "$API/v1/tenants/$TENANT/billing-config" | python3 -c '
        + q('import json, sys; c = json.load(sys.stdin)["in_force"]; print(json.dumps('
            '{k: c[k] for k in ("settings", "timezone", "effective_from", "price_plan")}))')
        + ' | curl -s -X PUT -H "Authorization: Bearer $SUPER" '
        "-H 'Content-Type: application/json' -d @- \"$API/v1/tenants/$TENANT/billing-config\"",
        f"{post_super} -d '{{\"method\": \"bank_transfer\", \"reference\": \"wire-1\"}}' "
        f'"$API/v1/invoices/{invoice}/payments"',
        'curl -s -X POST -H "Authorization: Bearer $INGEST" '
        f"-H 'Content-Type: application/cloudevents+json' -d {event} $API/v1/usage",
        "curl -s $API/readyz; curl -s $API/metrics | head; curl -s $API/openapi.json | head -c 300",
    ]
