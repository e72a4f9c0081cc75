"""`billing demo`: the whole platform, every worker its own OS process, on real usage data.

Steps: start the embedded stack; start `billing run usage-collector`,
`invoicer`, `payments`, `stripe-webhooks` and `notifier`; apply the tenants as a `super`
operator and set up their Stripe customers; import the usage and wait until it is aggregated;
move the billing clock from the earliest `effective_from` to `as_of`, stopping wherever
something is due and waiting for payments, status changes and emails to settle at each stop;
write the report to `out`; stop everything it started.
"""

import asyncio
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from contracts import TOPIC_DEAD_LETTER, TOPIC_NOTIFICATION, TOPIC_PAYMENT
from services.common.kafka import ensure_topics
from services.common.mongo import database, make_client
from services.common.settings import CommonSettings
from services.demo import steps
from services.demo.processes import WorkerSet
from services.demo.settle import default_subscriptions, wait_until_settled
from services.demo.topics import read_topic
from services.devstack.api import EmbeddedStack, free_port

WORKERS = ("usage-collector", "invoicer", "payments", "stripe-webhooks", "notifier")


@dataclass
class DemoOptions:
    """What `billing demo` was asked to do."""

    tenants: Path
    trace: Path
    as_of: datetime | None
    out: Path
    settle_timeout: float = 300.0
    quiet: bool = False


@dataclass
class DemoResult:
    """The summary written to `summary.json`; `unsettled` lists what did not settle."""

    summary: dict[str, Any] = field(default_factory=dict)
    unsettled: list[str] = field(default_factory=list)


class Demo:
    """One run of the demo; `run()` always stops what it started."""

    def __init__(self, options: DemoOptions) -> None:
        self.o = options
        self.console = Console(stderr=True, quiet=options.quiet)
        self.stack = EmbeddedStack(options.out / "stack")
        self.result = DemoResult()
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        self.console.print(f"[bold cyan]demo[/] {text}")

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
        workers = WorkerSet(dict(os.environ), self.o.out / "logs")
        try:
            await ensure_topics(settings)
            await self._run_steps(settings, workers, env)
        except Exception as exc:  # report, stop everything, exit non-zero
            self.result.unsettled.append(f"{type(exc).__name__}: {exc}")
            self.console.print_exception()
        finally:
            self.say("stopping workers and the stack")
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

    async def _run_steps(
        self, settings: CommonSettings, workers: WorkerSet, env: dict[str, str]
    ) -> None:
        ports = {}
        for name in WORKERS:
            # the webhook ingress serves /metrics, /healthz and /readyz on its own HTTP port
            ports[name] = self.webhook_port if name == "stripe-webhooks" else free_port()
            workers.start(name, {"BILLING_OPS_PORT": str(ports[name])})
        self.say(f"started workers {', '.join(WORKERS)}; waiting until each is ready")
        await self._wait_ready(ports, workers)

        client = make_client(settings)
        db = database(client, settings)
        try:
            self.say("applying tenants as a super operator; setting up Stripe customers")
            tenant_ids = await steps.apply_tenants(settings, self.o.tenants)
            await steps.setup_payments(settings, self.o.tenants, self.webhook_port)
            await self._settle(settings, db, "tenant configuration")

            self.say(f"importing usage from {self.o.trace}")
            report = await steps.import_usage(
                settings, self.o.trace, self.o.tenants, progress=not self.o.quiet
            )
            await self._settle(settings, db, "usage aggregation")
            as_of = self.o.as_of or steps.default_as_of(report)

            start = await steps.clock_start(self.o.tenants)
            self.say(f"moving the billing clock from {start.isoformat()} to {as_of.isoformat()}")
            await self._clock(settings, db, start, as_of)
            await self._report(settings, db, report, tenant_ids, as_of)
        finally:
            await client.close()

    async def _clock(
        self, settings: CommonSettings, db: Any, start: datetime, as_of: datetime
    ) -> None:
        now = start
        stops = 0
        while True:
            nxt = await steps.next_due(settings, now)
            if nxt is None or nxt > as_of:
                break
            stops += 1
            await steps.run_clock(settings, nxt, self.say)
            await self._settle(settings, db, f"billing clock at {nxt.isoformat()}")
            now = nxt
        if now < as_of:
            await steps.run_clock(settings, as_of, self.say)
            await self._settle(settings, db, f"billing clock at {as_of.isoformat()}")
        self.say(f"billing clock at {as_of.isoformat()} after {stops} stop(s)")

    async def _report(
        self,
        settings: CommonSettings,
        db: Any,
        report: dict[str, Any],
        tenant_ids: list[str],
        as_of: datetime,
    ) -> None:
        out = self.o.out
        invoices = await steps.export_invoices(settings)
        (out / "invoices.json").write_text(json.dumps(invoices, indent=2) + "\n")
        pdfs = await steps.write_pdfs(settings, out / "invoices")
        mail_src = self.stack.directory / "mail"
        mail_dst = out / "emails"
        shutil.rmtree(mail_dst, ignore_errors=True)
        mail_dst.mkdir(parents=True)
        for eml in sorted(mail_src.glob("*.eml")):
            shutil.copy2(eml, mail_dst / eml.name)
        dead = await read_topic(settings, TOPIC_DEAD_LETTER)
        (out / "dead-letters.jsonl").write_text(
            "".join(json.dumps(record["value"]) + "\n" for record in dead)
        )
        payments = await read_topic(settings, TOPIC_PAYMENT)
        notes = await read_topic(settings, TOPIC_NOTIFICATION)
        stats = await steps.collector_totals(settings)
        elapsed = time.monotonic() - self.started
        dead_by_service = Counter(
            r["value"].get("service") for r in dead if isinstance(r["value"], dict)
        )
        self.result.summary = {
            "as_of": as_of.isoformat(),
            "tenants": len(tenant_ids),
            "events": {
                "read": report.get("events_read", 0),
                "published": report.get("events_published", 0),
                "aggregated": stats.get("aggregated", 0),
                "duplicates": stats.get("duplicates", 0),
                "dead_lettered": sum(dead_by_service.values()),
                "dead_lettered_by_service": dict(dead_by_service),
                "rows_read": report.get("rows_read", 0),
            },
            "invoices": {
                "total": len(invoices),
                "by_status": dict(Counter(i["status"] for i in invoices)),
                "pdfs": pdfs,
            },
            "payments": _payment_counts(payments),
            "emails": {
                "files": len(list(mail_dst.glob("*.eml"))),
                "by_kind": dict(
                    Counter(n["value"].get("kind") for n in _unique(notes, "NotificationSent"))
                ),
                "failed": len(_unique(notes, "NotificationFailed")),
            },
            "elapsed_seconds": round(elapsed, 1),
            "events_per_second": round(report.get("events_published", 0) / elapsed, 1),
            "settled": not self.result.unsettled,
            "unsettled": self.result.unsettled,
        }
        (out / "summary.json").write_text(json.dumps(self.result.summary, indent=2) + "\n")


def _unique(records: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    """Records of `event_type`, one per event id (an outbox may republish after a crash)."""
    seen: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["type"] == event_type and isinstance(r["value"], dict):
            seen.setdefault(str(r["value"].get("event_id")), r)
    return list(seen.values())


def _payment_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    succeeded = _unique(records, "PaymentSucceeded")
    failed = _unique(records, "PaymentFailed")
    charged = [
        r for r in succeeded if str(r["value"].get("payment_reference", "")).startswith("pi_")
    ]
    return {
        "attempted": len(charged) + len(failed),
        "succeeded": len(succeeded),
        "succeeded_by_card": len(charged),
        "failed": len(failed),
    }
