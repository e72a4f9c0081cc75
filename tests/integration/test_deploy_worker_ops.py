"""A worker started as operators start it (`billing run notifier`, its own OS process) serves
/healthz, /readyz and /metrics over HTTP on BILLING_OPS_PORT, logs JSON lines, and on SIGTERM
drains and exits cleanly within its shutdown bound."""

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.devstack.ports import free_port
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

START_DEADLINE_SECONDS = 150.0
SHUTDOWN_TIMEOUT_SECONDS = 10


@pytest.fixture
def worker(subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`billing run notifier` on a free ops port; yields (base URL, stderr log file)."""
    port = free_port()
    env = dict(subprocess_env)
    env.update({
        "BILLING_OPS_HOST": "127.0.0.1",
        "BILLING_OPS_PORT": str(port),
        "BILLING_LOG_JSON": "true",
        "BILLING_SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT_SECONDS),
        "BILLING_SMTP_HOST": "127.0.0.1",
        "BILLING_SMTP_PORT": str(free_port()),  # nothing listens: no email is due anyway
    })
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", "notifier"],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}", log
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS + 30)
        assert code == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def poll(url: str, status: int, process_log: Path) -> httpx.Response:
    """GET `url` until it answers `status` or the start deadline passes."""

    def answered() -> httpx.Response | None:
        try:
            response = httpx.get(url, timeout=10)
        except httpx.TransportError:
            return None
        return response if response.status_code == status else None

    try:
        response: httpx.Response = wait_until(
            answered, what=f"{url} answering {status}", seconds=START_DEADLINE_SECONDS,
            interval=0.25,
        )
    except AssertionError as exc:
        tail = process_log.read_text(errors="replace")[-3000:]
        raise AssertionError(f"{exc}\n{tail}") from exc
    return response


def test_a_worker_process_serves_health_readiness_and_metrics_and_logs_json(
    worker: tuple[str, Path],
) -> None:
    base, log = worker
    health = poll(f"{base}/healthz", 200, log)
    assert health.json() == {"status": "ok"}

    ready = poll(f"{base}/readyz", 200, log)
    assert ready.json()["checks"] == {"mongodb": True, "kafka": True}

    metrics = poll(f"{base}/metrics", 200, log)
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE billing_dead_letters_total counter" in metrics.text
    assert "# TYPE billing_notifications_sent_total counter" in metrics.text

    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    assert lines, "the worker logged nothing"
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry)
