"""Invoice run benchmark (not a test): one billing cycle for many tenants, against its floors.

In one MongoDB database, in this order:
  1. tenants (`--tenants`, default 10,000): five currencies (USD, EUR, GBP, JPY with no minor
     unit, KWD with three digits), monthly, quarterly and yearly billing, five zones (UTC,
     America/New_York, Asia/Kolkata +05:30, Asia/Kathmandu +05:45, Australia/Eucla +08:45),
     every price model (per unit, graduated, volume, package), flat fees and coupons; each
     accepted by the invoicer's own configuration handler (`handlers.apply_config`), timed;
  2. usage: 4 meters per tenant, `--usage-hours` hours with an event each, spread evenly
     over the tenant's period (720 = every hour of a monthly tenant), written by the
     collector's own code (`usage_collector.api.record_usage`: buckets, quarter-hours,
     sequences, seen ids), timed;
  3. the cycle: `schedule.run_cycle(store, as_of)` once: wall time, invoices/s, billing
     errors (must be 0), the process's peak RSS during it;
  4. floors: `insert_many` of as many copies of a real issued invoice document (new `_id`
     each) as tenants, and one cursor over every usage bucket of the periods' hours;
  5. correctness: a random 1 % of the tenants (at least 20, `--seed`) priced again
     independently (`bench/invoice_check.py`), invoice numbers gapless, one invoice each.

Prints a table (ratios floor/cycle: target insert floor / cycle >= 0.2) and, with `--json`,
every figure. Exits 1 on any correctness failure or billing error, 2 when the estimated run
time exceeds `--max-minutes` (it suggests a `--usage-hours` that fits).

Servers: BILLING_MONGO_URI when set, otherwise an embedded stack started in a temporary
directory (and stopped afterwards).

    .venv/bin/python bench/invoice_run.py [--tenants 10000] [--usage-hours 720] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bson import encode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.invoice_check import check_numbers, compare, exponent  # noqa: E402
from bench.invoice_data import (  # noqa: E402
    AS_OF,
    CURRENCIES,
    TenantSpec,
    UsageRecord,
    buckets_planned,
    config_command,
    make_tenants,
    mix,
    usage_batches,
)
from bench.invoice_report import estimate_seconds, print_table, suggest_hours  # noqa: E402
from services.common.mongo import database, make_client  # noqa: E402
from services.common.settings import CommonSettings  # noqa: E402
from services.invoicer.adapters.store import InvoicerStore  # noqa: E402
from services.invoicer.handlers import apply_config  # noqa: E402
from services.invoicer.schedule import run_cycle  # noqa: E402
from services.usage_collector.api import record_usage  # noqa: E402

AGGREGATES = "usage_aggregates"
FLOOR = "bench_floor_invoices"


def vm_hwm_mb() -> float:
    """This process's peak resident set size (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_hwm() -> bool:
    """Reset the peak RSS counter (Linux `clear_refs` value 5); False when not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


async def bounded(jobs: Iterable[Awaitable[Any]], limit: int) -> None:
    """Await `jobs` with at most `limit` in flight."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[Any]) -> None:
        async with gate:
            await job

    await asyncio.gather(*(one(j) for j in jobs))


async def setup_tenants(store: InvoicerStore, tenants: list[TenantSpec], limit: int) -> float:
    """Accept each tenant's configuration with the worker's handler, `limit` at a time;
    returns the wall time (s)."""
    started = time.perf_counter()
    await bounded((apply_config(store, config_command(t)) for t in tenants), limit)
    return time.perf_counter() - started


async def write_usage(db: Any, batches: Iterator[list[bytes]], writers: int) -> float:
    """Write every batch with `writers` concurrent writers (batches hold whole tenants, so
    writers never touch one tenant's documents together)."""
    started = time.perf_counter()

    async def writer() -> None:
        for batch in batches:  # shared iterator: each batch is taken by one writer
            await record_usage(db, batch)

    await asyncio.gather(*(writer() for _ in range(writers)))
    return time.perf_counter() - started


async def floors(db: Any, tenants: list[TenantSpec], sample: dict[str, Any]) -> dict[str, Any]:
    """The insert floor (copies of `sample`, an issued invoice) and the raw usage read."""
    docs = [{**sample, "_id": f"floor-{i}"} for i in range(len(tenants))]
    await db[FLOOR].drop()
    started = time.perf_counter()
    await db[FLOOR].insert_many(docs)
    insert_s = time.perf_counter() - started
    await db[FLOOR].drop()
    low, high = min(t.start for t in tenants), max(t.end for t in tenants)
    started, read = time.perf_counter(), 0
    async for _ in db[AGGREGATES].find({"hour": {"$gte": low.replace(minute=0), "$lt": high}},
                                       batch_size=10_000):
        read += 1
    read_s = time.perf_counter() - started
    return {"insert_docs": len(docs), "invoice_bytes": len(encode(sample, codec_options=
            db.codec_options)), "insert_seconds": insert_s, "read_buckets": read,
            "read_seconds": read_s}


async def typical_invoice(db: Any) -> dict[str, Any]:
    """An issued invoice of median BSON size among a few hundred (the floor's document)."""
    found = [d async for d in db["invoicer_invoices"].find({}).limit(500)]
    if not found:
        raise RuntimeError("the cycle issued no invoice: nothing to copy for the floor")
    found.sort(key=lambda d: len(encode(d, codec_options=db.codec_options)))
    median: dict[str, Any] = found[len(found) // 2]
    return median


async def verify(db: Any, tenants: list[TenantSpec], record: UsageRecord,
                 seed: int) -> dict[str, Any]:
    """Numbers gapless and one invoice per tenant over every invoice; a random 1 % of the
    tenants (at least 20) priced again independently. Returns the problems found."""
    rows = [d async for d in db["invoicer_invoices"].find(
        {}, projection={"tenant_id": 1, "invoice_number": 1})]
    problems = check_numbers(rows, tenants)
    count = min(len(tenants), max(20, len(tenants) // 100))
    chosen = random.Random(seed).sample(tenants, count)
    for spec in chosen:
        doc = await db["invoicer_invoices"].find_one({"tenant_id": spec.tenant_id})
        problems += compare(spec, doc, record)
    return {"checked": count, "invoices": len(rows), "problems": problems}


async def main(args: argparse.Namespace, env: dict[str, str], drop: bool) -> dict[str, Any]:
    """Run every step in the database `env` names; drop it afterwards when `drop`."""
    os.environ.update(env)
    settings = CommonSettings()
    client = make_client(settings)
    db = database(client, settings)
    store = InvoicerStore(client, db)
    out: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                           "machine": machine(), "args": vars(args) | {"json": None},
                           "as_of": AS_OF.isoformat()}
    try:
        await store.ensure_indexes()
        tenants = make_tenants(args.tenants, args.seed, {c: exponent(c) for c in CURRENCIES},
                               args.shared_coupons)
        out["mix"] = mix(tenants)
        print(f"configuring {len(tenants):,} tenants...", flush=True)
        seconds = await setup_tenants(store, tenants, args.setup_concurrency)
        out["setup"] = {"tenants": len(tenants), "seconds": seconds}
        record = UsageRecord()
        planned = buckets_planned(tenants, args.usage_hours)
        print(f"writing {planned:,} usage buckets...", flush=True)
        batches = usage_batches(tenants, args.usage_hours, args.seed, record, args.batch)
        seconds = await write_usage(db, batches, args.writers)
        out["usage"] = {"events": record.events, "buckets": await db[AGGREGATES].count_documents(
            {}), "seconds": seconds}
        print("running the cycle...", flush=True)
        hwm_reset = reset_hwm()
        started = time.perf_counter()
        report = await run_cycle(store, AS_OF)
        seconds = time.perf_counter() - started
        errors = await db["invoicer_billing_errors"].count_documents({"status": "open"})
        out["cycle"] = {"seconds": seconds, "issued": len(report.issued),
                        "failed": len(report.failed), "billing_errors": errors,
                        "overdue": len(report.overdue),
                        "peak_rss_mb": vm_hwm_mb() if hwm_reset else None}
        out["process_peak_rss_mb"] = vm_hwm_mb()
        print("measuring the floors...", flush=True)
        out["floors"] = await floors(db, tenants, await typical_invoice(db))
        print("checking invoices...", flush=True)
        started = time.perf_counter()
        out["correctness"] = await verify(db, tenants, record, args.seed)
        out["correctness"]["seconds"] = time.perf_counter() - started
    finally:
        if drop:
            print("dropping the database...", flush=True)
            await client.drop_database(settings.mongo_db)
        await client.close()
    return out


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"host": platform.node(), "cpus": os.cpu_count(), "cpu_model": model,
            "python": platform.python_version(), "system": platform.platform()}


def parse_args() -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--usage-hours", type=int, default=720,
                        help="hours with usage per tenant and meter, spread over the period")
    parser.add_argument("--max-minutes", type=float, default=20.0,
                        help="refuse to start when the estimated run time is longer")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--shared-coupons", type=int, default=4,
                        help="campaign coupon codes per currency shared by tenants (0: none)")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--batch", type=int, default=5_000, help="usage events per batch")
    parser.add_argument("--writers", type=int, default=1, help="concurrent usage writers")
    parser.add_argument("--setup-concurrency", type=int, default=8)
    parser.add_argument("--keep", action="store_true",
                        help="keep the database afterwards (BILLING_MONGO_URI only)")
    args = parser.parse_args()
    if args.tenants < 1 or args.usage_hours < 1:
        parser.error("--tenants and --usage-hours must be at least 1")
    return args


def run() -> None:
    """Estimate, refuse or run, print the table, write the JSON, exit 1 on any failure."""
    args = parse_args()
    estimate = estimate_seconds(args.tenants, args.usage_hours)
    print(f"estimated run time: {estimate / 60:.1f} min ({args.tenants:,} tenants x 4 meters x "
          f"{args.usage_hours} usage hours; --max-minutes {args.max_minutes:g})")
    if estimate > args.max_minutes * 60:
        hours = suggest_hours(args.tenants, args.max_minutes * 60)
        hint = (f"--usage-hours {hours}" if hours else
                "fewer --tenants (the tenants alone do not fit)")
        print(f"refusing to start: over --max-minutes; try {hint} or raise --max-minutes",
              file=sys.stderr)
        sys.exit(2)
    tag = uuid.uuid4().hex[:8]
    env = dict(os.environ, BILLING_MONGO_DB=f"bench_invoice_{tag}", BILLING_LOG_LEVEL="WARNING")
    if os.environ.get("BILLING_MONGO_URI"):
        out = asyncio.run(main(args, env, drop=not args.keep))
    else:
        from services.devstack.stack import EmbeddedStack

        with tempfile.TemporaryDirectory() as tmp:
            stack = EmbeddedStack(Path(tmp))
            try:
                env.update(stack.up(timeout=90).env(stack.directory))
                out = asyncio.run(main(args, env, drop=False))  # the directory goes
            finally:
                print("stopping the embedded stack...", flush=True)
                stack.down()
    ok = print_table(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
        print(f"figures written to {args.json}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    run()
