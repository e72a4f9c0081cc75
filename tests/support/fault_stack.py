"""An embedded stack of a fault test's own (its MongoDB is restarted and its broker link cut,
so it must not be the session's servers), and the environment for workers pointed at it."""

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.demo.processes import WorkerSet
from services.devstack.api import EmbeddedStack, free_port

ROOT = Path(__file__).resolve().parents[2]
#: Every worker of `billing run`.
WORKERS = ("usage-collector", "invoicer", "payments", "stripe-webhooks", "notifier")


@contextmanager
def own_stack(directory: Path) -> Iterator[EmbeddedStack]:
    """Start an embedded stack in `directory`; stop exactly its processes on exit."""
    stack = EmbeddedStack(directory)
    try:
        stack.up(timeout=90)
        yield stack
    finally:
        stack.down()


def worker_env(stack: EmbeddedStack) -> dict[str, str]:
    """This interpreter's environment plus the stack's `BILLING_*` settings, a database and
    topic prefix of their own, and the repository on `PYTHONPATH` (for `billing run`)."""
    tag = uuid.uuid4().hex[:10]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env.update(stack.load().env(stack.directory))
    env.update({
        "BILLING_MONGO_DB": f"faults_{tag}",
        "BILLING_TOPIC_PREFIX": f"f{tag}.",
        "BILLING_LOG_JSON": "true",
        "BILLING_STRIPE_WEBHOOKS_PORT": str(free_port()),
        "BILLING_INVOICER_CYCLE_INTERVAL_SECONDS": "0",
        "BILLING_PAYMENTS_DUNNING_INTERVAL_SECONDS": "0",
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    return env


def start_workers(env: dict[str, str], log_dir: Path) -> WorkerSet:
    """Every worker kind as its own `billing run` process, all at once."""
    workers = WorkerSet(env, log_dir)
    for name in WORKERS:
        workers.start(name)
    return workers


def logs_of(workers: WorkerSet, tail: int = 3000) -> str:
    """The end of every worker's log, for a failure message."""
    return "\n".join(f"--- {w.name} (alive: {w.alive()})\n{w.log.read_text()[-tail:]}"
                     for w in workers.workers)
