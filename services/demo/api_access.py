"""The Billing API in the demo: `billing run api` as one more worker process, the keys the demo
creates for it (`OUT/api-keys.json`) and the curl lines `--keep-running` prints.

`api-keys.json`: `{url, super, viewer, ingest, tenants: {tenant_id: key}}`: one bearer key per
role and one `tenant` key per tenant of the run (docs/api.md explains the roles). The demo's
stack is local and short-lived; the file is written readable by its owner only.
"""

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def write_keys(keys: ApiKeys, path: Path) -> None:
    """Write `keys` to `path` (JSON, mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(keys.as_json(), indent=2) + "\n")


def summary_lines(keys: ApiKeys, keys_file: Path) -> list[str]:
    """What the demo's summary says about the API: its URL, the viewer key, the keys file."""
    return [f"API at {keys.url} (docs: {keys.url}/docs)",
            f"viewer key: {keys.viewer}",
            f"every key (super, viewer, ingest, one per tenant): {keys_file}"]


def curl_lines(keys: ApiKeys, keys_file: Path, invoice_number: str | None = None) -> list[str]:
    """Shell lines a user can paste to call each endpoint family of the running API with the
    run's keys and tenants: variables first, then one curl per endpoint."""
    tenant = next(iter(keys.tenants), "TENANT_ID")
    invoice = invoice_number or "INVOICE_NUMBER"
    tenant_key = keys.tenants.get(tenant, "TENANT_KEY")
    cloudevent = json.dumps({
        "specversion": "1.0", "id": "curl-1", "source": "curl", "type": "billing.usage",
        "subject": "@TENANT@", "time": "2013-09-30T12:00:00Z",
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
        f"{post_super} -d '{{\"amount\": \"10.00\", \"reason\": \"goodwill\"}}' "
        '"$API/v1/tenants/$TENANT/credits"',
        f"{post_super} -d '{{\"method\": \"bank_transfer\", \"reference\": \"wire-1\"}}' "
        f'"$API/v1/invoices/{invoice}/payments"',
        'curl -s -X POST -H "Authorization: Bearer $INGEST" '
        f"-H 'Content-Type: application/cloudevents+json' -d {event} $API/v1/usage",
        "curl -s $API/readyz; curl -s $API/metrics | head; curl -s $API/openapi.json | head -c 300",
    ]
