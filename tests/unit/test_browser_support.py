"""The browser tests' demo fixture fails fast and says why: a demo that exited before it was
ready, one that is not ready yet, one that does not stop cleanly; screenshot folders per test
(tests/support/browser.py)."""

import json
import signal
from pathlib import Path

import pytest

from services.devstack.api import free_port
from tests.support import browser
from tests.support.browser import _ready, _stop, output_folder

pytestmark = pytest.mark.unit


class FakeDemo:
    """Stands for the demo's `Popen`: exited with `code`, or running (`code` None) until it
    receives a signal, then exiting with `on_signal`."""

    pid = 0

    def __init__(self, code: int | None, on_signal: int = 0) -> None:
        self.returncode = code
        self.on_signal = on_signal
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        self.returncode = self.on_signal

    def wait(self, timeout: float | None = None) -> int:
        assert self.returncode is not None
        return self.returncode


def test_a_demo_that_exited_before_it_was_ready_fails_with_its_narration(tmp_path: Path) -> None:
    stderr = tmp_path / "out-stderr.log"
    stderr.write_text("demo starting the embedded stack\nTraceback: the stack did not start\n")
    with pytest.raises(AssertionError, match="(?s)exited with 1.*the stack did not start"):
        _ready(FakeDemo(1), tmp_path, stderr)  # type: ignore[arg-type]


def test_a_running_demo_is_not_ready_without_both_files_and_an_answering_api(
    tmp_path: Path,
) -> None:
    running, stderr = FakeDemo(None), tmp_path / "out-stderr.log"
    assert _ready(running, tmp_path, stderr) is None  # type: ignore[arg-type]
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    (tmp_path / browser.KEYS_FILE).write_text(json.dumps({"url": url}))
    assert _ready(running, tmp_path, stderr) is None  # type: ignore[arg-type]
    (tmp_path / browser.LINKS_FILE).write_text("{\"login_url\": ")  # being written
    assert _ready(running, tmp_path, stderr) is None  # type: ignore[arg-type]
    (tmp_path / browser.LINKS_FILE).write_text(json.dumps({"login_url": f"{url}/portal/login"}))
    assert _ready(running, tmp_path, stderr) is None  # type: ignore[arg-type]


def test_the_demo_is_stopped_with_sigterm_and_must_exit_0(tmp_path: Path) -> None:
    stderr = tmp_path / "out-stderr.log"
    stderr.write_text("demo stopping workers and the stack\nnot settled: workers exited\n")
    clean = FakeDemo(None, on_signal=0)
    _stop(clean, stderr)  # type: ignore[arg-type]
    assert clean.signals == [signal.SIGTERM]
    with pytest.raises(AssertionError, match="(?s)exited with 1.*workers exited"):
        _stop(FakeDemo(None, on_signal=1), stderr)  # type: ignore[arg-type]
    already = FakeDemo(0)
    _stop(already, stderr)  # type: ignore[arg-type]
    assert already.signals == []


def test_each_test_gets_its_own_emptied_output_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(browser, "OUTPUT_ROOT", tmp_path)
    folder = output_folder("test_pay[4242 4242/visa]")
    assert folder == tmp_path / "test_pay_4242_4242_visa_"
    (folder / "01-old.png").write_bytes(b"old")
    assert list(output_folder("test_pay[4242 4242/visa]").iterdir()) == []
