"""The portal in `billing demo --keep-running`: the operator sign-in page and one single-use
portal link per tenant, printed and written to `OUT/portal-links.json` (docs/portal.md).

`portal-links.json`: `{"login_url": str, "expires_at": ISO 8601 instant, "tenants":
{tenant_id: url}}`. Each link opens its tenant's pages once, until `expires_at` (links last
one hour); operators sign in at `login_url` with the `super` or `viewer` key of
`api-keys.json`. The file is readable by its owner only, like the keys file.
"""

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from services.api import api as billing_api

LINKS_FILE = "portal-links.json"
LOGIN_PATH = "/portal/login"
CREATED_BY = "demo"


@dataclass
class PortalLinks:
    """The operator sign-in URL and one single-use link per tenant, valid until `expires_at`
    (the earliest expiry of the links)."""

    login_url: str
    expires_at: datetime
    tenants: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The content of `portal-links.json`."""
        return {"login_url": self.login_url, "expires_at": self.expires_at.isoformat(),
                "tenants": dict(self.tenants)}


async def create_links(settings: billing_api.ApiSettings, api_url: str,
                       tenant_ids: Sequence[str]) -> PortalLinks:
    """A fresh portal link for each of `tenant_ids` on the API at `api_url` (raises
    `ValueError` without tenants: there would be nothing to open)."""
    if not tenant_ids:
        raise ValueError("no tenants to create portal links for")
    base = api_url.rstrip("/")
    links = [await billing_api.create_portal_link(settings, t, created_by=CREATED_BY,
                                                  base_url=base) for t in tenant_ids]
    return PortalLinks(login_url=f"{base}{LOGIN_PATH}",
                       expires_at=min(link.expires_at for link in links),
                       tenants={link.tenant_id: link.url for link in links})


def write_private_json(data: Any, path: Path) -> None:
    """Write `data` to `path` as indented JSON readable by its owner only (mode 0600, also
    over an earlier run's file with other permissions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(data, indent=2) + "\n")


def write_links(links: PortalLinks, path: Path) -> None:
    """Write `links` to `path` (JSON, mode 0600, also over an earlier run's file)."""
    write_private_json(links.as_json(), path)


def link_lines(links: PortalLinks, keys_file: Path, links_file: Path) -> list[str]:
    """What `--keep-running` prints about the portal: the sign-in page, then each tenant's
    link, then where the file is."""
    lines = [f"portal sign-in for operators: {links.login_url} "
             f"(sign in with the super or viewer key from {keys_file})",
             f"portal links (each opens its tenant's pages once, until "
             f"{links.expires_at:%Y-%m-%d %H:%M} UTC):"]
    lines += [f"  {tenant}: {url}" for tenant, url in links.tenants.items()]
    lines.append(f"the same links: {links_file}")
    return lines
