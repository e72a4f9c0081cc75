"""`billing demo`: the whole platform, every worker its own OS process, on real usage data.

Steps: start the embedded stack; start `billing run usage-collector` (`collectors` of them, in
one consumer group), `invoicer`, `payments`, `stripe-webhooks` and `notifier`, supervised
(`services.demo.supervisor`: a worker that exits is started again); apply the tenants as a
`super` operator and set up their Stripe customers; import the usage and wait until it is
aggregated; move the billing clock from the earliest `effective_from` to `as_of`, stopping
wherever something is due and waiting for payments, status changes and emails to settle at each
stop; write the report to `out`; stop everything it started.

With `chaos` (`services.demo.chaos`), faults are injected while usage flows and while the clock
moves, and before the report every consumer group is replayed from offset 0 into fresh workers
(`replay` in `summary.json`: what the replay added, which must be nothing).
"""

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from contracts import TOPIC_DEAD_LETTER
from services.common.kafka import ensure_topics
from services.common.mongo import database, make_client
from services.common.settings import CommonSettings
from services.demo import api_access, plans, steps
from services.demo.chaos import Chaos, ChaosOptions
from services.demo.processes import WorkerSet
from services.demo.progress import Progress, invoice_table
from services.demo.replay import REPLAY_GROUP_PREFIX, replay_sizes
from services.demo.report import platform_counts, write_report
from services.demo.self_service import run_self_service
from services.demo.settle import CONSUMES, default_subscriptions, wait_until_settled
from services.demo.supervisor import Supervisor
from services.demo.topics import read_topic
from services.devstack.api import EmbeddedStack, free_port, publish_poison

WORKERS = ("usage-collector", "invoicer", "payments", "stripe-webhooks", "notifier")


class NotSurvived(RuntimeError):
    """With `--chaos`, a step did not settle in time: the run stops there (exit 1)."""


@dataclass
class DemoOptions:
    """What `billing demo` was asked to do; `chaos` None runs without faults."""

    tenants: Path
    trace: Path
    as_of: datetime | None
    out: Path
    settle_timeout: float = 300.0
    quiet: bool = False
    collectors: int = 1
    chaos: ChaosOptions | None = None
    keep_running: bool = False


@dataclass
class DemoResult:
    """The summary written to `summary.json`; `unsettled` lists what did not settle; `api`
    the Billing API's URL and keys (also in `OUT/api-keys.json`)."""

    summary: dict[str, Any] = field(default_factory=dict)
    unsettled: list[str] = field(default_factory=list)
    api: api_access.ApiKeys | None = None


class Demo:
    """One run of the demo; `run()` always stops what it started."""

    def __init__(self, options: DemoOptions) -> None:
        self.o = options
        self.console = Console(stderr=True, quiet=options.quiet)
        self.stack = EmbeddedStack(options.out / "stack")
        self.result = DemoResult()
        self.started = time.monotonic()
        self.worker_sets: list[WorkerSet] = []
        self.api_workers: WorkerSet | None = None
        self.api_url = ""
        self.keys_file = options.out / api_access.KEYS_FILE

    def say(self, text: str) -> None:
        self.console.print(f"[bold cyan]demo[/] {text}", soft_wrap=True)  # a line per line

    async def run(self) -> DemoResult:
        """Run every step; never leaves a process behind."""
        if self.stack.directory.exists():
            self.stack.down()
            shutil.rmtree(self.stack.directory)
        self.say("starting the embedded stack (Kafka, MongoDB, SMTP sink, Stripe fake)")
        state = await asyncio.to_thread(self.stack.up, 90.0)
        env = self._environment(state.env(self.stack.directory))
        os.environ.update(env)
        settings = CommonSettings()
        try:
            await ensure_topics(settings)
            await self._run_steps(settings)
            if self.o.keep_running and self.result.summary:
                as_of = datetime.fromisoformat(self.result.summary["as_of"])
                await api_access.keep_running(self.worker_sets, self.result.api,
                                              self.keys_file, self.o.out, as_of, self.say)
        except Exception as exc:  # report, stop everything, exit non-zero
            self.result.unsettled.append(f"{type(exc).__name__}: {exc}")
            self.console.print_exception()
        finally:
            self.say("stopping workers and the stack")
            for workers in self.worker_sets:
                codes = workers.stop_all()
                bad = {n: c for n, c in codes.items() if c not in (0, None)}
                if bad:
                    self.result.unsettled.append(f"workers exited with codes {bad}")
            await asyncio.to_thread(self.stack.down)
        return self.result

    def _environment(self, stack_env: dict[str, str]) -> dict[str, str]:
        self.webhook_port = free_port()
        env = {
            **stack_env,
            "BILLING_MONGO_DB": "billing_demo",
            "BILLING_TOPIC_PREFIX": "",
            "BILLING_CLOCK_MODE": "event",
            "BILLING_INVOICER_CYCLE_INTERVAL_SECONDS": "0",
            "BILLING_PAYMENTS_DUNNING_INTERVAL_SECONDS": "0",
            "BILLING_LOG_LEVEL": "INFO",
            "BILLING_SMTP_FROM": "billing@platform.example",
        }
        env.update(steps.extra_environment(self.webhook_port))
        return env

    async def _start_workers(self, log_dir: Path, api: bool = False) -> WorkerSet:
        """Start every worker (`collectors` usage collectors) and, with `api`, the Billing API
        in its own set (`self.api_workers`); wait until each is ready."""
        workers = WorkerSet(dict(os.environ), log_dir)
        self.worker_sets.append(workers)
        ports: dict[str, int] = {}
        for kind in WORKERS:
            count = self.o.collectors if kind == "usage-collector" else 1
            for n in range(1, count + 1):
                name = kind if n == 1 else f"{kind}-{n}"
                # the webhook ingress serves /metrics, /healthz and /readyz on its own HTTP port
                ports[name] = self.webhook_port if kind == "stripe-webhooks" else free_port()
                workers.start(name, {"BILLING_OPS_PORT": str(ports[name])}, kind=kind)
        waits = [self._wait_ready(ports, workers)]
        if api:
            self.api_workers, port = api_access.start_api(dict(os.environ), log_dir)
            self.api_url = f"http://127.0.0.1:{port}"
            self.worker_sets.append(self.api_workers)
            waits.append(self._wait_ready({"api": port}, self.api_workers))
        names = [*ports, *(["api"] if api else [])]
        self.say(f"started workers {', '.join(names)}; waiting until each is ready")
        await asyncio.gather(*waits)
        return workers

    async def _wait_ready(self, ports: dict[str, int], workers: WorkerSet) -> None:
        deadline = time.monotonic() + 120
        waiting = dict(ports)
        async with httpx.AsyncClient(timeout=2) as http:
            while waiting and time.monotonic() < deadline:
                if workers.dead():
                    names = [w.name for w in workers.dead()]
                    raise RuntimeError(f"workers exited at start-up: {names} (see logs/)")
                for name, port in list(waiting.items()):
                    try:
                        if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                            del waiting[name]
                    except httpx.HTTPError:
                        pass
                await asyncio.sleep(0.2)
        if waiting:
            raise RuntimeError(f"workers not ready in 120 s: {sorted(waiting)} (see logs/)")

    async def _settle(self, settings: CommonSettings, db: Any, what: str) -> None:
        problem = await wait_until_settled(
            settings, db, default_subscriptions(settings), self.o.settle_timeout
        )
        if problem is not None:
            self.result.unsettled.append(f"{what}: {problem}")
            self.say(f"[red]not settled[/] after {what}: {problem}")
            if self.o.chaos is not None:  # a fault was not survived: nothing after it counts
                raise NotSurvived(f"not settled after {what}")

    def _chaos(self, workers: WorkerSet, settings: CommonSettings) -> Chaos | None:
        """The fault plan, when asked for, with the stack's MongoDB restart, broker link cut
        and poison messages."""
        if self.o.chaos is None:
            return None
        return Chaos(self.o.chaos, workers, settings, self.say, self.stack, publish_poison)

    async def _run_steps(self, settings: CommonSettings) -> None:
        workers = await self._start_workers(self.o.out / "logs", api=True)
        supervisor = Supervisor(workers, self.say)
        assert self.api_workers is not None
        api_supervisor = Supervisor(self.api_workers, self.say)
        chaos = self._chaos(workers, settings)
        client = make_client(settings)
        db = database(client, settings)
        try:
            async with supervisor.running(), api_supervisor.running():
                self.say("applying tenants as a super operator; setting up Stripe customers")
                tenant_ids = await steps.apply_tenants(settings, self.o.tenants)
                self.result.api = await api_access.issue_keys(db, self.api_url, tenant_ids,
                                                              self.keys_file, self.say)
                await steps.setup_payments(settings, self.o.tenants, self.webhook_port)
                catalog = await plans.apply_catalog(self.o.out, self.say)
                await self._settle(settings, db, "tenant configuration")

                self.say(f"importing usage from {self.o.trace}")
                async with chaos.phase("usage") if chaos else _nothing():
                    report = await steps.import_usage(
                        settings, self.o.trace, self.o.tenants, progress=not self.o.quiet
                    )
                    await self._settle(settings, db, "usage aggregation")
                as_of = self.o.as_of or steps.default_as_of(report)

                trace_totals: dict[str, int] | None = None  # the collector's, before later usage
                self_service: dict[str, Any] | None = None
                start = await steps.clock_start(self.o.tenants)
                self.say(f"moving the billing clock from {start.isoformat()} to {as_of:%Y-%m-%d}")
                async with chaos.phase("clock") if chaos else _nothing():
                    await self._clock(settings, db, start, as_of, chaos, Progress(settings))
                if chaos:
                    await self._settle(settings, db, "the last faults")
                else:  # the fault run compares the billing clock's output only
                    trace_totals = await steps.collector_totals(settings)
                    self_service = await self._self_service(settings, db, catalog)
            restarts = {w.name: supervisor.restarts[w.name] for w in workers.workers}
            summary: dict[str, Any] = {}
            if chaos:
                summary["replay"] = await self._replay(settings, db, workers)
            summary |= await write_report(  # events: the trace's, before the self-service
                settings, self.o.out, self.stack.directory / "mail", report, tenant_ids, as_of,
                trace_totals)
            summary["api"] = {"url": self.api_url, "keys_file": str(self.keys_file)}
            summary["restarts"] = restarts
            if self_service is not None:
                summary["self_service"] = self_service
            if chaos:
                dead = [r["value"] for r in await read_topic(settings, TOPIC_DEAD_LETTER)]
                readers = Counter(topic for topic, _ in CONSUMES)
                summary["faults"] = chaos.summary(dead, restarts, dict(readers))
            self._finish(summary)
            invoices = json.loads((self.o.out / "invoices.json").read_text())
            self.console.print(invoice_table(invoices))
        finally:
            await client.close()

    async def _self_service(self, settings: CommonSettings, db: Any,
                            catalog: list[dict[str, Any]]) -> dict[str, Any]:
        """The self-service step (`services.demo.self_service`), settled; its summary
        section, with the plan catalog applied."""
        assert self.result.api is not None
        done = await run_self_service(db, self.result.api, self.keys_file,
                                      self.stack.directory / "mail", self.say)
        self.result.unsettled += done.problems
        await self._settle(settings, db, "self-service")
        return {"plans_file": str(self.o.out / plans.PLANS_FILE), "plans": catalog,
                **done.as_json()}

    async def _clock(
        self, settings: CommonSettings, db: Any, start: datetime, as_of: datetime,
        chaos: Chaos | None, progress: Progress,
    ) -> None:
        now = start
        stops = 0
        while True:
            nxt = await steps.next_due(settings, now)
            if nxt is None or nxt > as_of:
                break
            stops += 1
            await steps.run_clock(settings, nxt, self.say)
            if chaos:
                await chaos.after_clock_stop(stops)
            await self._settle(settings, db, f"billing clock at {nxt.isoformat()}")
            await progress.tell(self.say)
            now = nxt
        if now < as_of:
            await steps.run_clock(settings, as_of, self.say)
            await self._settle(settings, db, f"billing clock at {as_of.isoformat()}")
            await progress.tell(self.say)
        self.say(f"billing clock at {as_of.isoformat()} after {stops} stop(s)")

    async def _replay(
        self, settings: CommonSettings, db: Any, workers: WorkerSet
    ) -> dict[str, Any]:
        """Stop every worker, start fresh ones in new consumer groups (which begin at offset
        0 of every partition) and wait until each group has consumed to the end; returns what
        that added (`new`: must be all 0 but `duplicates`, which counts the replayed usage)."""
        mail = self.stack.directory / "mail"
        before = await platform_counts(settings, mail)
        self.say("replay: stopping the workers; fresh workers in new groups read from offset 0")
        workers.stop_all()
        os.environ["BILLING_GROUP_PREFIX"] = REPLAY_GROUP_PREFIX
        replaying = CommonSettings()
        try:
            groups = await replay_sizes(replaying, default_subscriptions(replaying))
            began = time.monotonic()
            fresh = await self._start_workers(self.o.out / "logs" / "replay")
            async with Supervisor(fresh, self.say).running():
                await self._settle(replaying, db, "the replay from offset 0")
        finally:
            os.environ.pop("BILLING_GROUP_PREFIX", None)
        after = await platform_counts(settings, mail)
        seconds = round(time.monotonic() - began, 1)
        self.say(f"replay: consumed to the end in {seconds} s; before {before}, after {after}")
        return {
            "groups": groups,
            "seconds": seconds,
            "before": before,
            "after": after,
            "new": {k: after[k] - before[k] for k in before},
        }

    def _finish(self, summary: dict[str, Any]) -> None:
        elapsed = time.monotonic() - self.started
        published = summary.get("events", {}).get("published", 0)
        summary["elapsed_seconds"] = round(elapsed, 1)
        summary["events_per_second"] = round(published / elapsed, 1)
        summary["settled"] = not self.result.unsettled
        summary["unsettled"] = self.result.unsettled
        self.result.summary = summary
        (self.o.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


@contextlib.asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    """A phase without faults."""
    yield
