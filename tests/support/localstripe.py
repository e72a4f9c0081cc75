"""The `localstripe_server` fixture: localstripe (PyPI `localstripe`, an independent fake
Stripe server, GPL-3.0, a test-only tool run as a separate program) on a free loopback port.

It runs as a subprocess of this interpreter: a short launcher binds 127.0.0.1 on port 0,
prints the port, turns off localstripe's on-disk store (it would otherwise write
/tmp/localstripe.pickle after every change and reload it on start) and serves localstripe's
aiohttp app on that socket. Each test gets it emptied (`DELETE /_config/data`). Webhooks are
configured through its own route `POST /_config/webhooks/{id}` (url, secret): it has no
`/v1/webhook_endpoints`. Why and how it is used: docs/stripe-fake.md, "Checked against
localstripe".
"""

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support.polling import wait_until

__all__ = ["localstripe", "localstripe_server"]
API_KEY = "sk_test_localstripe"
LAUNCHER = """
import socket, sys
from aiohttp import web
from localstripe import resources, server
resources.Store.dump_to_disk = lambda self: None
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
web.run_app(server.app, sock=sock, print=None, access_log=None)
"""


class LocalstripeServer:
    """localstripe in a child process on 127.0.0.1 (a free port)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self, timeout: float = 30.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        port = self.process.stdout.readline().strip()
        if not port.isdigit():
            self.stop()
            raise RuntimeError("localstripe did not start (is it installed? see pyproject)")
        self.base_url = f"http://127.0.0.1:{port}"
        process = self.process

        def answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError("localstripe exited while starting")
            try:
                httpx.delete(f"{self.base_url}/_config/data", timeout=2).raise_for_status()
            except httpx.HTTPError:
                return False
            return True

        try:
            wait_until(answers, what="localstripe to answer", seconds=timeout, interval=0.05)
        except (AssertionError, RuntimeError):
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Localstripe:
    """An emptied localstripe: its URL, an API key it accepts, and its config routes."""

    base_url: str
    api_key: str

    def reset(self) -> None:
        httpx.delete(f"{self.base_url}/_config/data", timeout=30).raise_for_status()

    def configure_webhook(self, url: str, secret: str, name: str = "tests") -> None:
        """Send every event to `url`, signed with `secret` (localstripe's own route)."""
        httpx.post(f"{self.base_url}/_config/webhooks/{name}",
                   data={"url": url, "secret": secret}, timeout=30).raise_for_status()


@pytest.fixture(scope="session")
def localstripe_server() -> Iterator[LocalstripeServer]:
    server = LocalstripeServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def localstripe(localstripe_server: LocalstripeServer) -> Iterator[Localstripe]:
    """The session's localstripe, emptied for this test."""
    found = Localstripe(localstripe_server.base_url, API_KEY)
    found.reset()
    yield found
    found.reset()
