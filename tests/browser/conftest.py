"""Fixtures of the browser tests: ONE `billing demo --keep-running` for the whole module
(`demo_portal`), one headless Chromium (`browser`), and per test a fresh browser context
(`context`, `page`) and an output folder for screenshots (`shots`).

A failing test gets a last screenshot (`failure.png`) and its report names the folder
(`.billing/test-output/<test name>/`). `PORTAL_TEST_DEMO_OUT=<out dir>` points the tests at a
demo already running with `--keep-running --out <out dir>` instead of starting one (to
iterate on a test; the demo's data changes as tests pay and edit).
"""

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.support.browser import (
    KEYS_FILE,
    LINKS_FILE,
    ConsoleErrors,
    DemoPortal,
    Shots,
    launch,
    output_folder,
    running_demo,
)

#: The browser's language: the portal formats money for it (en_US).
LOCALE = "en-US"
#: Playwright's default wait for an element or a navigation, in milliseconds.
ACTION_TIMEOUT_MS = 20_000
expect.set_options(timeout=ACTION_TIMEOUT_MS)
FOLDER_KEY = pytest.StashKey[Path]()
CONSOLE_KEY = pytest.StashKey[ConsoleErrors]()


@pytest.fixture(scope="module")
def demo_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoPortal]:
    """The demo's platform and API, up for the whole module: keys, links, out dir, API URL."""
    existing = os.environ.get("PORTAL_TEST_DEMO_OUT")
    if existing:
        import json

        out = Path(existing)
        keys = json.loads((out / KEYS_FILE).read_text())
        yield DemoPortal(out=out, url=keys["url"], keys=keys,
                         links=json.loads((out / LINKS_FILE).read_text()),
                         stderr=out.parent / f"{out.name}-stderr.log",
                         used_links=set(keys["tenants"]))  # printed links: maybe used
        return
    with running_demo(tmp_path_factory.mktemp("portal-demo") / "out") as demo:
        yield demo


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium (Debian's), shared by the module's tests."""
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Path:
    """`.billing/test-output/<test name>/`, emptied for this test."""
    folder = output_folder(request.node.name)
    request.node.stash[FOLDER_KEY] = folder
    return folder


@pytest.fixture
def shots(output_dir: Path) -> Shots:
    """`shots(page, "name")` saves a numbered full-page screenshot in the test's folder."""
    return Shots(output_dir)


@pytest.fixture
def console_errors(request: pytest.FixtureRequest) -> ConsoleErrors:
    """The console errors of every page of this test's context."""
    found = ConsoleErrors()
    request.node.stash[CONSOLE_KEY] = found
    return found


@pytest.fixture
def context(browser: Browser, output_dir: Path,
            console_errors: ConsoleErrors) -> Iterator[BrowserContext]:
    """A fresh browser context (no cookies), downloads accepted, locale en-US."""
    ctx = browser.new_context(accept_downloads=True, locale=LOCALE,
                              viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(ACTION_TIMEOUT_MS)
    ctx.on("page", console_errors.watch)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(request: pytest.FixtureRequest, context: BrowserContext,
         output_dir: Path) -> Iterator[Page]:
    """A page of the test's context; after a failure its last state is `failure.png`."""
    tab = context.new_page()
    yield tab
    report = request.node.stash.get(REPORT_KEY, None)
    if report is not None and report.failed and not tab.is_closed():
        tab.screenshot(path=str(output_dir / "failure.png"), full_page=True)


REPORT_KEY = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None],
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep the call's report for the `page` fixture and name the output folder (and the
    console errors seen) in a failure's report."""
    report = yield
    if report.when == "call":
        item.stash[REPORT_KEY] = report
    if report.failed and FOLDER_KEY in item.stash:
        lines = [f"screenshots: {item.stash[FOLDER_KEY]}"]
        if CONSOLE_KEY in item.stash and item.stash[CONSOLE_KEY].seen:
            lines += ["console errors:", *item.stash[CONSOLE_KEY].seen]
        report.sections.append(("browser test output", "\n".join(lines)))
    return report
