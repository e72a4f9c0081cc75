"""An embedded stack of a fault test's own (its MongoDB is restarted and its broker link cut,
so it must not be the session's servers), and the environment for workers pointed at it."""

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.devstack.api import EmbeddedStack

ROOT = Path(__file__).resolve().parents[2]


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
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    return env
