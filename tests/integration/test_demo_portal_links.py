"""The portal links `billing demo --keep-running` prints and writes to `portal-links.json`:
the file's shape and mode, links that open their tenant's pages once, and the file written
before the demo says that everything keeps running."""

import json
import stat
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from services.api.settings import ApiSettings
from services.demo import api_access
from services.demo.api_access import ApiKeys
from services.demo.portal_links import create_links, link_lines, write_links
from tests.integration.portal_tenant_support import open_link
from tests.integration.test_invoicer_support import config
from tests.support.api import BASE_URL, ApiHarness

pytestmark = pytest.mark.integration


async def _tenants(*tenant_ids: str) -> None:
    from services.invoicer.handlers import apply_config
    from services.invoicer.settings import InvoicerSettings
    from tests.integration.test_invoicer_support import open_store

    async with open_store(InvoicerSettings()) as store:
        for tenant_id in tenant_ids:
            await apply_config(store, config(tenant_id))


def _path(url: str) -> str:
    return str(httpx.URL(url).raw_path.decode())


async def test_each_portal_link_opens_its_tenants_pages_once(api: ApiHarness,
                                                             tmp_path: Path) -> None:
    await _tenants("acme", "globex")
    links = await create_links(ApiSettings(), BASE_URL + "/", ["acme", "globex"])
    path = tmp_path / "portal-links.json"
    path.write_text("{}")
    path.chmod(0o644)  # an earlier run's file
    write_links(links, path)

    written = json.loads(path.read_text())
    assert set(written) == {"login_url", "expires_at", "tenants"}
    assert written["login_url"] == "http://api.test/portal/login"
    assert datetime.fromisoformat(written["expires_at"]) == links.expires_at
    assert set(written["tenants"]) == {"acme", "globex"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    for tenant_id, url in written["tenants"].items():
        assert url.startswith("http://api.test/portal/link/")
        opened = await open_link(api.client, url)
        assert opened.status_code == 303
        assert opened.headers["location"] == f"/portal/tenants/{tenant_id}/invoices"
        again = await open_link(api.client, url)
        assert again.status_code == 404  # single use

    login = await api.client.get(_path(written["login_url"]))
    assert login.status_code == 200


async def test_no_tenants_means_no_links(api: ApiHarness) -> None:
    with pytest.raises(ValueError, match="no tenants"):
        await create_links(ApiSettings(), BASE_URL, [])


async def test_keep_running_writes_the_links_before_it_says_it_keeps_running(
    api: ApiHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _tenants("acme")
    keys = ApiKeys(url=BASE_URL, super="bk_super", viewer="bk_viewer", ingest="bk_ingest",
                   tenants={"acme": "bk_acme"})
    links_file = tmp_path / "portal-links.json"
    said: list[tuple[str, bool]] = []

    async def stopped_at_once() -> None:
        said.append(("stopped", links_file.exists()))

    monkeypatch.setattr(api_access, "until_stopped", stopped_at_once)
    await api_access.keep_running([], keys, tmp_path / "api-keys.json", tmp_path, None,
                                  lambda text: said.append((text, links_file.exists())))

    assert said[0][0].startswith("everything keeps running") and said[0][1]
    printed = capsys.readouterr().err
    url = json.loads(links_file.read_text())["tenants"]["acme"]
    assert f"  acme: {url}" in printed
    assert "http://api.test/portal/login" in printed
    assert "super or viewer key" in printed
    assert printed.index("viewer key: bk_viewer") < printed.index("portal sign-in")


def test_the_printed_lines_name_each_tenant_and_the_files() -> None:
    from services.demo.portal_links import PortalLinks

    links = PortalLinks(login_url="http://x/portal/login",
                        expires_at=datetime.fromisoformat("2026-01-01T10:00:00+00:00"),
                        tenants={"acme": "http://x/portal/link/a"})
    text = "\n".join(link_lines(links, Path("/o/api-keys.json"), Path("/o/portal-links.json")))
    assert "http://x/portal/login" in text and "/o/api-keys.json" in text
    assert "acme: http://x/portal/link/a" in text and "2026-01-01 10:00 UTC" in text
    assert "/o/portal-links.json" in text
