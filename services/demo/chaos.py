"""The demo's fault plan (`billing demo --chaos`): what is broken, when, and what was survived.

Two phases, each entered by the runner with `Chaos.phase(name)`:

- `usage` (the import and its aggregation): every worker kind is killed `kills` times with
  SIGKILL (one of its processes, chosen at random), MongoDB is restarted once and the poison
  messages are published, in a random order at random moments;
- `clock` (the billing clock moving from stop to stop): every kind is killed `kills` times
  again, and the broker link is cut once for `kafka_cut_seconds`, right after the billing clock
  has moved to a randomly chosen stop (`after_clock_stop`), so that workers are busy.

Moments and targets come from one `random.Random(random_state)`: the same state gives the same
plan (which kinds, in which order, after which gaps). Faults a phase has not reached when its
work ends are carried out at once, so every planned fault happens. The supervisor
(`services.demo.supervisor`) restarts the killed workers; the stack's own primitives restart
MongoDB and cut the link (docs/operations.md, the embedded stack's faults).
"""

import asyncio
import base64
import contextlib
import os
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.common.settings import CommonSettings
from services.demo.processes import WorkerProcess, WorkerSet

#: The worker kinds the plan kills (every `billing run` worker).
KINDS = ("usage-collector", "invoicer", "payments", "stripe-webhooks", "notifier")
PHASES = ("usage", "clock")


@dataclass(frozen=True)
class ChaosOptions:
    """What `--chaos` breaks: `kills` SIGKILLs per worker kind in each phase, `collectors`
    usage collectors in one consumer group, MongoDB down for `mongo_down_seconds` once, the
    broker link cut for `kafka_cut_seconds` once; gaps between faults are drawn uniformly from
    [`min_gap_seconds`, `max_gap_seconds`] by a generator started from `random_state`. The
    closing replay consumes every topic again from offset 0 in fresh consumer groups."""

    kills: int = 1
    random_state: int = 0
    collectors: int = 2
    mongo_down_seconds: float = 3.0
    kafka_cut_seconds: float = 30.0
    min_gap_seconds: float = 0.5
    max_gap_seconds: float = 5.0


class StackFaults(Protocol):
    """The embedded stack's fault primitives (`services.devstack.api.EmbeddedStack`)."""

    def restart_mongodb(self, down_seconds: float = 0.0, timeout: float = 60.0) -> None:
        """Kill MongoDB, keep it down `down_seconds`, start it again on its data directory."""

    def cut_kafka(self, seconds: float) -> None:
        """Break every connection through the broker link for `seconds` (returns at once)."""


class PoisonMessage(Protocol):
    """A message no worker can process (`services.devstack.api.Poison`)."""

    @property
    def topic(self) -> str:
        """The contract topic it is published to."""

    @property
    def key(self) -> bytes:
        """Its key."""

    @property
    def value(self) -> bytes:
        """Its bytes."""

    @property
    def reason(self) -> str:
        """The dead-letter reason it must get."""

    @property
    def readers(self) -> int | None:
        """How many consumer groups of its topic take it (None: all of them)."""


#: Publishes every poison message (`services.devstack.api.publish_poison`).
PublishPoison = Callable[[CommonSettings], Awaitable[Sequence[PoisonMessage]]]


class Chaos:
    """Carries out the plan against `workers`; `summary()` is the `faults` section of
    `summary.json`. `stack` and `publish_poison` may be None: those faults are then left out
    and reported as not available."""

    def __init__(
        self,
        options: ChaosOptions,
        workers: WorkerSet,
        settings: CommonSettings,
        say: Callable[[str], None],
        stack: StackFaults | None = None,
        publish_poison: PublishPoison | None = None,
    ) -> None:
        self.o = options
        self.workers = workers
        self.settings = settings
        self.say = say
        self.stack = stack
        self.publish_poison = publish_poison
        self.rng = random.Random(options.random_state)
        self.started = time.monotonic()
        self.kills: Counter[str] = Counter()
        self.timeline: list[dict[str, Any]] = []
        self.poison: list[PoisonMessage] = []
        self.mongo_restarts = 0
        self.kafka_cuts = 0
        self.cut_at_stop = self.rng.randint(1, 3)

    def plan(self, phase: str) -> list[str]:
        """The phase's faults in the order they will happen: `kill:<kind>`, `restart-mongodb`,
        `poison`."""
        actions = [f"kill:{kind}" for kind in KINDS for _ in range(self.o.kills)]
        if phase == "usage":
            actions += ["restart-mongodb"] if self.stack is not None else []
            actions += ["poison"] if self.publish_poison is not None else []
        self.rng.shuffle(actions)
        return actions

    @contextlib.asynccontextmanager
    async def phase(self, name: str) -> AsyncIterator[None]:
        """Carry out `name`'s plan while the block runs; on leaving, whatever was not reached
        happens at once, and the block's exit waits for it."""
        ended = asyncio.Event()
        task = asyncio.create_task(self._run(name, self.plan(name), ended))
        try:
            yield
        finally:
            ended.set()
            if name == "clock" and self.kafka_cuts == 0:
                await self._cut_kafka(name)
            await task

    async def _run(self, phase: str, actions: list[str], ended: asyncio.Event) -> None:
        for action in actions:
            gap = self.rng.uniform(self.o.min_gap_seconds, self.o.max_gap_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), gap)  # paces the plan; ends early
            if action.startswith("kill:"):
                await self._kill(phase, action.removeprefix("kill:"))
            elif action == "restart-mongodb":
                await self._restart_mongodb(phase)
            elif action == "poison":
                await self._publish_poison(phase)

    def _note(self, phase: str, fault: str, target: str) -> None:
        at = round(time.monotonic() - self.started, 1)
        self.timeline.append({"at_seconds": at, "phase": phase, "fault": fault, "target": target})
        self.say(f"[magenta]chaos[/] {phase}: {fault} {target}")

    async def _kill(self, phase: str, kind: str) -> None:
        deadline = time.monotonic() + 60
        alive: list[WorkerProcess] = []
        while not alive and time.monotonic() < deadline:
            alive = [w for w in self.workers.of_kind(kind) if w.alive()]
            if not alive:
                await asyncio.sleep(0.2)  # every process of the kind is being restarted
        if not alive:
            self._note(phase, "kill skipped (no live process)", kind)
            return
        victim = self.rng.choice(alive)
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.process.pid, signal.SIGKILL)
        self.kills[kind] += 1
        self._note(phase, "SIGKILL", f"{victim.name} (pid {victim.process.pid})")

    async def _restart_mongodb(self, phase: str) -> None:
        assert self.stack is not None
        self._note(phase, "restart", f"MongoDB (down {self.o.mongo_down_seconds:g} s)")
        await asyncio.to_thread(self.stack.restart_mongodb, self.o.mongo_down_seconds)
        self.mongo_restarts += 1
        self._note(phase, "restarted", "MongoDB")

    async def _cut_kafka(self, phase: str) -> None:
        if self.stack is None:
            return
        await asyncio.to_thread(self.stack.cut_kafka, self.o.kafka_cut_seconds)
        self.kafka_cuts += 1
        self._note(phase, "cut", f"broker link for {self.o.kafka_cut_seconds:g} s")

    async def after_clock_stop(self, stop: int) -> None:
        """Called by the runner once the billing clock has moved to its `stop`-th stop (1-based)
        and before waiting for it to settle: cuts the broker link at the planned stop."""
        if stop >= self.cut_at_stop and self.kafka_cuts == 0:
            await self._cut_kafka("clock")

    async def _publish_poison(self, phase: str) -> None:
        assert self.publish_poison is not None
        self.poison = list(await self.publish_poison(self.settings))
        self._note(phase, "published", f"{len(self.poison)} poison message(s)")

    def summary(
        self,
        dead_letters: list[dict[str, Any]],
        restarts: dict[str, int],
        consumers: dict[str, int],
    ) -> dict[str, Any]:
        """The `faults` section: kills per kind, restarts per worker, MongoDB restarts, link
        cuts, and each poison message with the dead letters found for it (`dead_letters` are
        the dead-letter topic's values; `consumers`: contract topic -> groups reading it)."""
        return {
            "random_state": self.o.random_state,
            "kills": {kind: self.kills[kind] for kind in KINDS},
            "restarts": restarts,
            "mongodb_restarts": self.mongo_restarts if self.stack is not None else None,
            "kafka_link_cuts": self.kafka_cuts if self.stack is not None else None,
            "poison": poison_outcomes(self.settings, self.poison, dead_letters, consumers)
            if self.publish_poison is not None
            else None,
            "timeline": self.timeline,
        }


def poison_outcomes(
    settings: CommonSettings,
    poison: Sequence[PoisonMessage],
    dead_letters: list[dict[str, Any]],
    consumers: dict[str, int],
) -> dict[str, Any]:
    """For each poison message: its topic, the reason expected, how many workers take it (its
    `readers`, else every consumer group of its topic: `consumers`, contract topic -> groups)
    and the reasons of the dead letters holding its bytes on its topic. A message is `ok` when
    every one of its readers dead-lettered it with the expected reason (a worker killed between
    its dead letter and its commit may write a second, equal one)."""
    found = []
    for p in poison:
        topic = settings.topic(p.topic)
        readers = p.readers if p.readers is not None else consumers.get(p.topic, 0)
        letters = [
            d for d in dead_letters
            if isinstance(d, dict) and d.get("topic") == topic and _original(d) == p.value
        ]
        services = {str(d.get("service")) for d in letters if d.get("reason") == p.reason}
        found.append(
            {
                "topic": p.topic,
                "expected_reason": p.reason,
                "readers": readers,
                "dead_letters": sorted(f"{d.get('service')}: {d.get('reason')}" for d in letters),
                "ok": len(services) >= readers
                and all(d.get("reason") == p.reason for d in letters),
            }
        )
    return {
        "published": len(poison),
        "dead_lettered": sum(1 for f in found if f["dead_letters"]),
        "with_expected_reason": sum(1 for f in found if f["ok"]),
        "messages": found,
    }


def _original(letter: dict[str, Any]) -> bytes:
    """A dead letter's original bytes (`original`, text or base64 per `original_encoding`)."""
    text = str(letter.get("original", ""))
    if letter.get("original_encoding") == "base64":
        return base64.b64decode(text)
    return text.encode("utf-8")
