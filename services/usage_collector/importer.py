"""Publishing usage events: JSON lines files and the Bitbrains trace (`billing usage ...`).

A JSON lines file holds one `UsageRecorded` CloudEvent per line (docs/usage.md). A Bitbrains
trace is a directory of per-VM CSV files; `trace.py` describes its columns and how each row
becomes one event per meter.

Events go to `billing.usage.v1` keyed by tenant id with the `event-type: UsageRecorded`
header, through one batching aiokafka producer (linger, large batches), so hundreds of
thousands of events publish in seconds. Trace rows that cannot be converted are published to
`billing.dead-letter.v1` (service `usage_importer`, topic = the file's path relative to the
trace directory, offset = its line number, reason `unparseable_row`), never dropped.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from contracts.topics import TOPIC_DEAD_LETTER, TOPIC_USAGE
from services.common.codec import encode, headers_for
from services.common.deadletter import DeadLetter, MessageSource, dead_letter_event
from services.common.kafka import ensure_topics
from services.common.metrics import DEAD_LETTERS
from services.common.settings import CommonSettings
from services.usage_collector.trace import (
    BadRow,
    Owner,
    convert_row,
    load_owners,
    usage_events,
)

IMPORTER = "usage_importer"
_HEADERS = headers_for("UsageRecorded")
_PENDING_SENDS = 20_000


@dataclass
class ImportReport:
    """Outcome of a trace import. Times are the min/max event `time` published (UTC)."""

    files: int = 0
    rows_read: int = 0
    events_published: int = 0
    rows_skipped: int = 0
    rows_dead_lettered: int = 0
    min_time: datetime | None = None
    max_time: datetime | None = None


class _Publisher:
    """A batching producer that bounds the number of unacknowledged sends."""

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            enable_idempotence=settings.kafka_enable_idempotence,
            linger_ms=20,
            max_batch_size=512 * 1024,
            acks="all",
        )
        self.futures: list[asyncio.Future[Any]] = []

    async def __aenter__(self) -> _Publisher:
        await ensure_topics(self.settings)
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                await self.flush()
        finally:
            await self.producer.stop()

    async def send(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        fut = await self.producer.send(
            self.settings.topic(topic), value, key=key, headers=headers
        )
        self.futures.append(fut)
        if len(self.futures) >= _PENDING_SENDS:
            await self.flush()

    async def flush(self) -> None:
        """Wait until every send so far is acknowledged (raises the first failure)."""
        futures, self.futures = self.futures, []
        if futures:
            await asyncio.gather(*futures)


async def publish_jsonl(settings: CommonSettings, path: Path) -> int:
    """Publish each non-empty line of `path` as-is to `billing.usage.v1`; returns the count.

    The key is the line's `subject` when it parses as a JSON object with a string subject,
    otherwise no key (the collector dead-letters what it cannot read).
    """
    count = 0
    async with _Publisher(settings) as pub:
        with path.open("rb") as lines:
            for raw in lines:
                line = raw.strip()
                if not line:
                    continue
                key = None
                try:
                    subject = json.loads(line).get("subject")
                    key = subject.encode() if isinstance(subject, str) else None
                except (ValueError, AttributeError):
                    pass
                await pub.send(TOPIC_USAGE, line, key, _HEADERS)
                count += 1
    return count


def trace_files(trace_dir: Path) -> list[Path]:
    """`<dir>/<month>/<vm>.csv` files, by month directory then VM id."""
    files = [p for p in trace_dir.glob("*/*.csv") if p.is_file()]

    def order(p: Path) -> tuple[str, int, str]:
        return (p.parent.name, int(p.stem) if p.stem.isdigit() else 0, p.stem)

    return sorted(files, key=order)


async def import_bitbrains(
    settings: CommonSettings,
    trace_dir: Path,
    tenants_file: Path,
    *,
    progress: bool = True,
    trace_name: str | None = None,
) -> ImportReport:
    """Publish the Bitbrains trace under `trace_dir` as usage events (module docstring).

    Only VMs listed in `tenants_file`'s usage sources (of `trace_name` if given, else any
    trace) are published; other VMs' rows are counted in `rows_skipped`. Repeated timestamps
    repeat event ids, which the collector de-duplicates.
    """
    owners = load_owners(tenants_file, trace_name)
    files = trace_files(trace_dir)
    report = ImportReport(files=len(files))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    # progress goes to stderr so stdout stays clean for machine-readable output (--json)
    with Progress(
        *columns, disable=not progress, transient=False, console=Console(stderr=True)
    ) as bar:
        task = bar.add_task("import bitbrains", total=sum(p.stat().st_size for p in files))
        async with _Publisher(settings) as pub:
            for path in files:
                await _import_file(pub, trace_dir, path, owners, report)
                bar.update(task, advance=path.stat().st_size)
    return report


async def _import_file(
    pub: _Publisher, root: Path, path: Path, owners: dict[str, Owner], report: ImportReport
) -> None:
    vm, relative = path.stem, path.relative_to(root).as_posix()
    owner = owners.get(vm)
    with path.open(encoding="utf-8", errors="replace") as lines:
        next(lines, None)  # the header row
        for number, line in enumerate(lines, start=2):
            if not line.strip():
                continue
            report.rows_read += 1
            if owner is None:
                report.rows_skipped += 1
                continue
            try:
                row = convert_row(line)
            except BadRow as exc:
                await _dead_letter_row(pub, relative, number, line, str(exc), owner.tenant_id)
                report.rows_dead_lettered += 1
                continue
            key = owner.tenant_id.encode()
            events = usage_events(vm, owner, row)
            for event in events:
                body = json.dumps(event, separators=(",", ":")).encode()
                await pub.send(TOPIC_USAGE, body, key, _HEADERS)
            report.events_published += len(events)
            moment = datetime.fromtimestamp(row.timestamp, UTC)
            if report.min_time is None or moment < report.min_time:
                report.min_time = moment
            if report.max_time is None or moment > report.max_time:
                report.max_time = moment


async def _dead_letter_row(
    pub: _Publisher, relative: str, number: int, line: str, detail: str, tenant: str
) -> None:
    source = MessageSource(relative, -1, number, tenant.encode(), line.rstrip("\r\n").encode())
    letter = DeadLetter(source, "unparseable_row", detail)
    body, headers = encode(dead_letter_event(IMPORTER, letter))
    await pub.send(TOPIC_DEAD_LETTER, body, tenant.encode(), headers)
    DEAD_LETTERS.labels(service=IMPORTER, reason=letter.reason).inc()
