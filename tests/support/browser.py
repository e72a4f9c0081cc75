"""The portal in a real browser: `billing demo --keep-running` as a subprocess, Chromium driven by
Playwright, and what a browser test leaves behind (screenshots, console errors).

    with running_demo(out) as demo:                   # keys, links, out dir, API URL
        browser = launch(playwright)                  # Debian's /usr/bin/chromium, headless
        folder = output_folder("test_name")           # .billing/test-output/test_name/
        page.goto(demo.new_link("acme"))              # a fresh single-use portal link

The demo runs on its own embedded stack (no `BILLING_*` variable of the caller is passed on),
exactly as `make demo` does, and writes `portal-links.json` and `api-keys.json` to its output
folder; it is ready when both exist and the API's `/readyz` answers 200. Stopping it is a
SIGTERM (as Ctrl-C), after which it stops every process it started.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright

from tests.support.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]
#: Screenshots and other files a browser test leaves for people (gitignored, kept after the run).
OUTPUT_ROOT = ROOT / ".billing" / "test-output"
#: Debian's `chromium` package (`make system-tools` installs it); Playwright never downloads one.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
LINKS_FILE = "portal-links.json"
KEYS_FILE = "api-keys.json"
#: The demo takes about 90 s on two cores; the deadline leaves room for a busy machine.
DEMO_READY_SECONDS = 420.0
DEMO_STOP_SECONDS = 120.0


@dataclass
class DemoPortal:
    """A running `billing demo --keep-running`: its output folder, the API's URL, the keys of
    `api-keys.json` (`super`, `viewer`, `ingest`, `tenants`) and the single-use portal links
    of `portal-links.json` (`login_url`, `expires_at`, `tenants`)."""

    out: Path
    url: str
    keys: dict[str, Any]
    links: dict[str, Any]
    stderr: Path
    used_links: set[str] = field(default_factory=set)

    def api(self, method: str, path: str, key: str | None = None,
            **kwargs: Any) -> httpx.Response:
        """One API call with the `super` key (or `key`), e.g. `api("GET", "/v1/dashboard")`."""
        headers = {"Authorization": f"Bearer {key or self.keys['super']}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30.0, **kwargs)

    def get(self, path: str, key: str | None = None, **params: str) -> Any:
        """`GET path` (super key unless `key`); the JSON body, asserting 200."""
        response = self.api("GET", path, key, params=params)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def new_link(self, tenant_id: str) -> str:
        """A fresh single-use portal link for `tenant_id` (the links the demo printed can each
        be opened once), made with `POST /v1/tenants/{id}/portal-sessions` and the super key."""
        response = self.api("POST", f"/v1/tenants/{tenant_id}/portal-sessions")
        assert response.status_code == 201, response.text
        url: str = response.json()["url"]
        return url

    def demo_link(self, tenant_id: str) -> str:
        """The link the demo printed for `tenant_id` the first time it is asked for (it is
        single-use), a fresh one afterwards."""
        if tenant_id in self.used_links:
            return self.new_link(tenant_id)
        self.used_links.add(tenant_id)
        url: str = self.links["tenants"][tenant_id]
        return url

    def invoices(self, tenant_id: str, status: str = "all") -> list[dict[str, Any]]:
        """Every invoice of `tenant_id` in the API's list for `status` (all | unpaid | paid)."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params = {"tenant_id": tenant_id, "status": status, "limit": "100"}
            body = self.get("/v1/invoices", **params, **({"cursor": cursor} if cursor else {}))
            found += body["data"]
            cursor = body.get("next_cursor")
            if not cursor:
                return found

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the demo's narration (stderr)."""
        return self.stderr.read_text(errors="replace")[-chars:] if self.stderr.exists() else ""


def demo_environment() -> dict[str, str]:
    """The environment of `make demo`: this one without `BILLING_*` (the demo configures its
    own stack), the repository on `PYTHONPATH` and this interpreter's bin first on `PATH`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env["PYTHONPATH"] = str(ROOT)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _ready(proc: subprocess.Popen[bytes], out: Path, stderr: Path) -> dict[str, Any] | None:
    """The two files' content once both exist and the API answers /readyz, else None; fails at
    once when the demo exited."""
    if proc.poll() is not None:
        raise AssertionError(f"billing demo exited with {proc.returncode} before it was ready:\n"
                             + stderr.read_text(errors="replace")[-4000:])
    try:
        keys = json.loads((out / KEYS_FILE).read_text())
        links = json.loads((out / LINKS_FILE).read_text())
    except (OSError, ValueError):  # not written yet (or being written)
        return None
    try:
        answer = httpx.get(f"{keys['url']}/readyz", timeout=5.0)
    except httpx.HTTPError:
        return None
    return {"keys": keys, "links": links} if answer.status_code == 200 else None


@contextmanager
def running_demo(out: Path) -> Iterator[DemoPortal]:
    """Run `billing demo --keep-running --out OUT` until the block ends, then SIGTERM it and
    wait for it to stop everything it started (exit 0). Its narration goes to
    `<out>-stderr.log`; a demo that exits early or is not ready in `DEMO_READY_SECONDS`
    fails with the end of it."""
    stderr = out.parent / f"{out.name}-stderr.log"
    with stderr.open("wb") as err, (out.parent / f"{out.name}-stdout.log").open("wb") as std:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "demo", "--keep-running", "--out", str(out)],
            cwd=ROOT, env=demo_environment(), stdout=std, stderr=err, start_new_session=True)
    try:
        found = wait_until(lambda: _ready(proc, out, stderr), what="the demo's portal links, "
                           f"keys and a ready API (narration: {stderr})",
                           seconds=DEMO_READY_SECONDS, interval=1.0)
        yield DemoPortal(out=out, url=found["keys"]["url"], keys=found["keys"],
                         links=found["links"], stderr=stderr)
    finally:
        _stop(proc, stderr)


def _stop(proc: subprocess.Popen[bytes], stderr: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=DEMO_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what this demo started
        proc.wait()
        raise AssertionError(f"billing demo did not stop within {DEMO_STOP_SECONDS} s of "
                             f"SIGTERM:\n{stderr.read_text(errors='replace')[-3000:]}") from None
    assert code == 0, f"billing demo exited with {code}:\n{stderr.read_text()[-3000:]}"


def launch(playwright: Playwright) -> Browser:
    """Headless Chromium from Debian's package (never a downloaded one)."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make system-tools` installs it"
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS),
                                      headless=True)


def output_folder(test_name: str) -> Path:
    """`.billing/test-output/<test name>/`, emptied: where a browser test saves screenshots."""
    folder = OUTPUT_ROOT / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@dataclass
class Shots:
    """Numbered full-page screenshots of one test in its output folder."""

    folder: Path
    taken: list[Path] = field(default_factory=list)

    def __call__(self, page: Page, name: str) -> Path:
        """Save `page` as `<folder>/NN-<name>.png`; returns the file."""
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


@dataclass
class ConsoleErrors:
    """Every console error, uncaught page error and failed request of the pages it watches."""

    seen: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        """Record `page`'s errors from now on."""
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.seen.append(f"page error: {exc}"))
        page.on("requestfailed", lambda r: self.seen.append(f"request failed: {r.url}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.seen.append(f"console error on {message.location.get('url')}: "
                             f"{message.text}")


def focus_by_tab(page: Page, is_target: str, presses: int = 40) -> int:
    """Press Tab until the focused element satisfies the JavaScript predicate `is_target`
    (a function of the element, e.g. `el => el.id === "api_key"`); returns the number of
    presses, fails after `presses`."""
    for count in range(1, presses + 1):
        page.keyboard.press("Tab")
        if page.evaluate(f"({is_target})(document.activeElement)"):
            return count
    active = page.evaluate("document.activeElement && document.activeElement.outerHTML")
    raise AssertionError(f"not reached with {presses} Tab presses (focus on {active})")

