"""`billing dev up | status | down` as a user runs them, in a subprocess."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pymongo import MongoClient

pytestmark = pytest.mark.integration
BILLING = [sys.executable, "-m", "services.cli"]


def billing(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BILLING, *args], cwd=cwd, capture_output=True, text=True, timeout=180, check=False
    )


def test_dev_up_status_down_start_and_stop_exactly_their_processes(tmp_path: Path) -> None:
    state = tmp_path / "stack"
    root = Path(__file__).resolve().parents[2]
    try:
        up = billing("dev", "up", "--dir", str(state), cwd=root)
        assert up.returncode == 0, up.stderr
        env = dict(line.split("=", 1) for line in up.stdout.splitlines() if "=" in line)
        assert env["BILLING_KAFKA_BOOTSTRAP_SERVERS"].startswith("127.0.0.1:")
        assert (state / "dev.env").read_text().count("BILLING_") >= 4

        client: MongoClient[dict[str, object]] = MongoClient(
            env["BILLING_MONGO_URI"], serverSelectionTimeoutMS=20_000
        )
        assert client.admin.command("ping")["ok"] == 1
        client.close()

        status = billing("dev", "status", "--dir", str(state), cwd=root)
        assert status.returncode == 0, status.stdout
        info = json.loads(status.stdout)
        assert {"kafka", "mongodb", "smtp"} <= set(info)
        assert all(c["running"] for c in info.values())

        again = billing("dev", "up", "--dir", str(state), cwd=root)  # idempotent
        assert again.returncode == 0
        assert json.loads(billing("dev", "status", "--dir", str(state), cwd=root).stdout) == info

        # A crashed server is noticed and restarted on its port; the others are kept.
        os.kill(info["smtp"]["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            crashed = billing("dev", "status", "--dir", str(state), cwd=root)
            if crashed.returncode == 1:
                break
        assert json.loads(crashed.stdout)["smtp"]["running"] is False
        restarted = billing("dev", "up", "--dir", str(state), cwd=root)
        assert restarted.returncode == 0, restarted.stderr
        after_crash = json.loads(billing("dev", "status", "--dir", str(state), cwd=root).stdout)
        assert after_crash["smtp"]["running"]
        assert after_crash["smtp"]["port"] == info["smtp"]["port"]
        assert after_crash["smtp"]["pid"] != info["smtp"]["pid"]
        assert after_crash["kafka"] == info["kafka"]
    finally:
        down = billing("dev", "down", "--dir", str(state), cwd=root)
    assert down.returncode == 0 and "kafka" in down.stdout
    after = billing("dev", "status", "--dir", str(state), cwd=root)
    assert after.returncode == 1
