"""Compact de-duplication record of aggregated usage events: `usage_seen_ids`.

Where an event id lives is derived from the event itself (docs/usage.md#de-duplication):
the root document `_id` is "{tenant}|{source}|{YYYYMMDDHH}" (subject, source and UTC hour
of the event's `time`; "%" and "|" inside tenant or source are written %25 and %7C, so
the key names one triple only). A document is either a leaf `{"n": count, "ids": [id...]}`
holding the `id` part (after "{source}/") of at most `cap` events, or `{"split": true}`:
its ids then live in 16 children "{root}|{h[:d]}", `h` the hex BLAKE2b-64 of the id and `d`
the child's depth, recursively.

Lookup of a batch reads candidate documents by `_id` `$in`, one round trip per depth that
exists; writes append to leaves guarded by their read count `n`, split a leaf that would
pass `cap` (the leaf becomes `{"split": true}`, its ids and the new ones go to inserted
children) and insert new leaves. Everything runs in the batch's transaction: a concurrent
writer of the same leaf makes the guard miss (`GuardMissed`), a duplicate `_id` or a write
conflict aborts, and the whole transaction is retried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.usage_collector.acceptance import Sample
from services.usage_collector.adapters.processed import chunks, raw_write
from services.usage_collector.adapters.sequences import IN_CHUNK

SEEN = "usage_seen_ids"
#: Ids per document before it splits (bounds a document to ~1 MB at 512-character ids).
DEFAULT_CAP = 2_000
#: Hex digits of the hash: a document at this depth is never split (cannot happen in
#: practice: it would take more than `cap` ids sharing 64 hash bits).
_MAX_DEPTH = 16
#: Ids per raw write command (<= ~10 MB at the longest ids, below the 16 MB command limit).
_WRITE_IDS = 20_000

Db = AsyncDatabase[dict[str, Any]]


class GuardMissed(Exception):
    """A document changed between our read and our write: retry the transaction."""


def _escape(part: str) -> str:
    if "|" in part or "%" in part:
        return part.replace("%", "%25").replace("|", "%7C")
    return part


def _unescape(part: str) -> str:
    return part.replace("%7C", "|").replace("%25", "%")


def root_key(tenant: str, source: str, hour: datetime) -> str:
    """The root document `_id` of events of `tenant` from `source` in UTC `hour`."""
    return f"{_escape(tenant)}|{_escape(source)}|{hour:%Y%m%d%H}"


def id_hash(local_id: str) -> str:
    """The stable hex hash (16 digits) whose digit `d` picks the child at depth `d + 1`."""
    return hashlib.blake2b(local_id.encode(), digest_size=8).hexdigest()


@dataclass(slots=True)
class Leaf:
    """A leaf the batch's ids hash to: stored (`n` ids in `stored`) or absent (`n` None),
    and the batch's ids not found in it (`new`: id part -> event id)."""

    key: str
    depth: int
    n: int | None
    stored: list[str]
    new: dict[str, str]


@dataclass(slots=True)
class Found:
    """Result of `SeenIds.find`: event ids already recorded, and the leaves to write."""

    done: set[str] = field(default_factory=set)
    leaves: list[Leaf] = field(default_factory=list)


class SeenIds:
    """Reads and writes the seen-id documents of one batch inside its transaction."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        """`cap`: ids per document before it splits (tests use a small one)."""
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.cap = cap
        self._hashes: dict[str, str] = {}

    def _hash(self, local_id: str) -> str:
        h = self._hashes.get(local_id)
        if h is None:
            h = self._hashes[local_id] = id_hash(local_id)
        return h

    async def find(self, db: Db, s: AsyncClientSession, samples: list[Sample]) -> Found:
        """Which event ids of `samples` (distinct) are recorded, and the leaves their ids
        hash to; one `$in` read per depth that exists."""
        self._hashes = {}
        groups: dict[tuple[str, str, datetime], dict[str, str]] = {}
        for smp in samples:
            group = (smp.key[0], smp.source, smp.key[3])
            ids = groups.get(group)
            if ids is None:
                ids = groups[group] = {}
            ids[smp.event_id[len(smp.source) + 1:]] = smp.event_id
        pending = {root_key(*g): (0, ids) for g, ids in groups.items()}
        found = Found()
        while pending:
            docs = await _read(db, s, list(pending))
            deeper: dict[str, tuple[int, dict[str, str]]] = {}
            for key, (depth, ids) in pending.items():
                doc = docs.get(key)
                if doc is not None and doc.get("split"):
                    base = f"{key}|" if depth == 0 else key
                    for local, event_id in ids.items():
                        child = base + self._hash(local)[depth]
                        entry = deeper.get(child)
                        if entry is None:
                            deeper[child] = (depth + 1, {local: event_id})
                        else:
                            entry[1][local] = event_id
                    continue
                stored: list[str] = doc["ids"] if doc is not None else []
                for local in ids.keys() & stored:
                    found.done.add(ids.pop(local))
                n = None if doc is None else int(doc["n"])
                found.leaves.append(Leaf(key, depth, n, stored, ids))
            pending = deeper
        return found

    async def add(self, db: Db, s: AsyncClientSession, found: Found, skip: set[str]) -> int:
        """Record the new ids of `found`'s leaves except the event ids in `skip`; the number
        of documents inserted or updated. Raises `GuardMissed` or `OperationFailure` (the
        transaction must be retried) when a leaf changed since `find`."""
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for leaf in found.leaves:
            new = [i for i, e in leaf.new.items() if e not in skip] if skip else list(leaf.new)
            if not new:
                continue
            if leaf.n is None:
                self._place(leaf.key, leaf.depth, new, inserts)
            elif leaf.n + len(new) <= self.cap or leaf.depth >= _MAX_DEPTH:
                updates.append({"q": {"_id": leaf.key, "n": leaf.n},
                                "u": {"$push": {"ids": {"$each": new}}, "$inc": {"n": len(new)}}})
            else:
                updates.append({"q": {"_id": leaf.key, "n": leaf.n},
                                "u": {"$set": {"split": True}, "$unset": {"ids": "", "n": ""}}})
                self._split(leaf.key, leaf.depth, leaf.stored + new, inserts)
        await _insert(db, s, inserts)
        await _update(db, s, updates)
        return len(inserts) + len(updates)

    def _place(self, key: str, depth: int, ids: list[str], out: list[dict[str, Any]]) -> None:
        if len(ids) <= self.cap or depth >= _MAX_DEPTH:
            out.append({"_id": key, "n": len(ids), "ids": ids})
        else:
            out.append({"_id": key, "split": True})
            self._split(key, depth, ids, out)

    def _split(self, key: str, depth: int, ids: list[str], out: list[dict[str, Any]]) -> None:
        base = f"{key}|" if depth == 0 else key
        children: dict[str, list[str]] = {}
        for local in ids:
            children.setdefault(self._hash(local)[depth], []).append(local)
        for digit in sorted(children):
            self._place(base + digit, depth + 1, children[digit], out)


async def _read(db: Db, s: AsyncClientSession, keys: list[str]) -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for chunk in chunks(keys, IN_CHUNK):  # documents that mostly exist: small `$in`s
        async for doc in db[SEEN].find({"_id": {"$in": chunk}}, session=s):
            docs[doc["_id"]] = doc
    return docs


def _by_ids(
    items: list[dict[str, Any]], size: Callable[[dict[str, Any]], int]
) -> list[list[dict[str, Any]]]:
    """`items` in runs of about `_WRITE_IDS` ids (`size(item)` ids each)."""
    runs: list[list[dict[str, Any]]] = []
    run: list[dict[str, Any]] = []
    count = 0
    for item in items:
        if run and count + size(item) > _WRITE_IDS:
            runs.append(run)
            run, count = [], 0
        run.append(item)
        count += size(item) + 1
    if run:
        runs.append(run)
    return runs


async def _insert(db: Db, s: AsyncClientSession, docs: list[dict[str, Any]]) -> None:
    """Raw `insert` commands: one C-encoded command per run instead of per-document Python.
    A duplicate `_id` (a concurrent writer created the leaf) raises `OperationFailure`."""
    for run in _by_ids(docs, lambda d: len(d.get("ids", ()))):
        await raw_write(db, s, {"insert": SEEN, "documents": run, "ordered": False},
                        "seen ids not inserted")


def _pushed(update: dict[str, Any]) -> int:
    push = update["u"].get("$push")
    return len(push["ids"]["$each"]) if push else 0


async def _update(db: Db, s: AsyncClientSession, updates: list[dict[str, Any]]) -> None:
    """Raw `update` commands; a leaf whose count guard misses raises `GuardMissed`."""
    for run in _by_ids(updates, _pushed):
        reply = await raw_write(db, s, {"update": SEEN, "updates": run, "ordered": False},
                                "seen ids not updated")
        if int(reply.get("n", 0)) != len(run):
            raise GuardMissed(f"{len(run) - int(reply.get('n', 0))} seen-id leaves changed")


async def count_seen_ids(db: Db, source: str | None = None, event_id: str | None = None) -> int:
    """How many event ids are recorded (all, those of `source`, or how often `event_id`
    "{source}/{id}" is, with `source` given): a full scan, for tests and checks only."""
    total = 0
    async for doc in db[SEEN].find({}):
        if doc.get("split"):
            continue
        parts = doc["_id"].split("|")
        if source is not None and _unescape(parts[1]) != source:
            continue
        if event_id is None:
            total += len(doc["ids"])
        elif source is not None and event_id.startswith(f"{source}/"):
            total += doc["ids"].count(event_id[len(source) + 1:])
    return total
