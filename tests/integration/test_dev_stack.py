"""`billing dev up | status | env | down` as a user runs them, in a subprocess."""

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pymongo import MongoClient

from tests.support.polling import wait_until

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

        def noticed() -> subprocess.CompletedProcess[str] | None:
            status = billing("dev", "status", "--dir", str(state), cwd=root)
            return status if status.returncode == 1 else None

        crashed = wait_until(noticed, what="status noticing the killed SMTP sink", seconds=30)
        assert json.loads(crashed.stdout)["smtp"]["running"] is False
        assert billing("dev", "env", "--dir", str(state), cwd=root).returncode == 1
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


def test_dev_env_points_another_shell_at_the_running_stack(tmp_path: Path) -> None:
    state = tmp_path / "stack"
    root = Path(__file__).resolve().parents[2]
    assert billing("dev", "env", "--dir", str(state), cwd=root).returncode == 1, "nothing runs"
    try:
        up = billing("dev", "up", "--dir", str(state), cwd=root)
        assert up.returncode == 0, up.stderr
        started = dict(line.split("=", 1) for line in up.stdout.splitlines() if "=" in line)
        printed = billing("dev", "env", "--dir", str(state), cwd=root)
        assert printed.returncode == 0, printed.stderr
        assert all(line.startswith("export BILLING_") for line in printed.stdout.splitlines())

        # Another shell, without any BILLING_ variable of its own, evals the lines and then runs
        # a command that reads the settings and one that talks to the stack's MongoDB.
        billing_cmd = " ".join(shlex.quote(part) for part in BILLING)
        script = (
            f'eval "$({billing_cmd} dev env --dir {shlex.quote(str(state))})" && env && '
            f"{billing_cmd} usage stats --json"
        )
        clean = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
        shell = subprocess.run(
            ["bash", "-c", script], cwd=root, env=clean, capture_output=True, text=True,
            timeout=180, check=False,
        )
        assert shell.returncode == 0, shell.stderr
        *env_lines, stats_line = shell.stdout.splitlines()
        seen = dict(line.split("=", 1) for line in env_lines if line.startswith("BILLING_"))
        assert seen == started
        assert json.loads(stats_line)["aggregated"] == 0
    finally:
        billing("dev", "down", "--dir", str(state), cwd=root)
