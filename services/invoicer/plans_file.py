"""Applying a plans file (`billing plans apply FILE`, docs/plans.md "Plans"): a JSON or YAML
list of plans (or a mapping with a `plans` list), each the `Plan` contract's fields.

Each plan whose content differs from its code's newest version is published as a signed
`PlanSubmitted` (keyed `plan:{code}`), and the outcome is awaited: the invoicer stores it as
the next version, or refuses it (audited). Plans equal to their newest version are not
submitted, so applying one file twice changes nothing.
"""

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from contracts import TOPIC_TENANT_CONFIG, Actor, Plan, PlanSubmitted
from contracts.base import utc_now
from services.common.kafka import ensure_topics
from services.common.signing import sign
from services.common.tracking import PROCESSED_EVENTS, tracking_id
from services.common.worker import make_broker, publish_event
from services.invoicer.adapters.plans import PLANS, plan_version
from services.invoicer.adapters.store import AUDIT
from services.invoicer.plan_handlers import PLAN_CONSUMER, validate_plan
from services.invoicer.reports import open_store
from services.invoicer.settings import InvoicerSettings

Outcome = Literal["created", "new_version", "unchanged", "would_create", "would_add_version"]


@dataclass(frozen=True)
class PlanOutcome:
    """What applying one plan did: `outcome` and the `version` it has now (for `would_...`
    outcomes of a dry run, the version it would get)."""

    code: str
    outcome: Outcome
    version: int

    def describe(self) -> str:
        """One line for an operator: `starter: created (version 1)`."""
        words = {"created": "created", "new_version": f"new version {self.version}",
                 "unchanged": f"unchanged (version {self.version})",
                 "would_create": "would be created",
                 "would_add_version": f"would get version {self.version}"}
        suffix = " (version 1)" if self.outcome == "created" else ""
        return f"{self.code}: {words[self.outcome]}{suffix}"


class PlansRefused(RuntimeError):
    """The invoicer refused submitted plans; `refused` maps plan code -> reason."""

    def __init__(self, refused: dict[str, str]) -> None:
        super().__init__(f"plans refused by the invoicer: {refused}")
        self.refused = refused


def read_plans_file(path: Path) -> list[Plan]:
    """The plans of a JSON (`.json`) or YAML file. Raises `ValueError` naming the plan (by
    position and code) and the fields that are wrong, or a code given twice."""
    text = path.read_text(encoding="utf-8")
    data: Any = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    if isinstance(data, dict):
        data = data.get("plans")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of plans (or a mapping with 'plans')")
    plans: list[Plan] = []
    for index, item in enumerate(data):
        name = f"plan {index + 1}" + (f" ({item.get('code')!r})" if isinstance(item, dict)
                                      else "")
        try:
            plan = Plan.model_validate(item)
        except ValidationError as exc:
            fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'plan'}: {e['msg']}"
                               for e in exc.errors())
            raise ValueError(f"{path}: {name}: {fields}") from exc
        try:
            validate_plan(plan)
        except Exception as exc:  # InvalidMessage: the invoicer's own rule
            raise ValueError(f"{path}: {name}: {exc}") from exc
        plans.append(plan)
    codes = [p.code for p in plans]
    twice = sorted({c for c in codes if codes.count(c) > 1})
    if twice:
        raise ValueError(f"{path}: plan codes given more than once: {', '.join(twice)}")
    return plans


async def apply_plans(
    settings: InvoicerSettings, plans: list[Plan], *, actor_id: str, role: str,
    dry_run: bool = False, timeout: float = 60.0,  # noqa: ASYNC109
) -> list[PlanOutcome]:
    """Submit each plan that differs from its newest version (none with `dry_run`), signed
    with `BILLING_COMMAND_SIGNING_KEY` as actor `actor_id` with `role`, and wait until the
    invoicer stored each; one `PlanOutcome` per plan, in the given order. Raises
    `MissingSigningKey` before anything is published, `PlansRefused` when the invoicer refused
    some (for example a role other than super), `TimeoutError` after `timeout` seconds."""
    key = None if dry_run else settings.signing_key()
    actor = Actor(user_id=actor_id, role=role)
    outcomes: dict[str, PlanOutcome] = {}
    pending: dict[str, PlanSubmitted] = {}
    async with open_store(settings) as store:
        for plan in plans:
            current = await plan_version(store.db, plan.code)
            if current is not None and current.plan == plan:
                outcomes[plan.code] = PlanOutcome(plan.code, "unchanged", current.version)
            elif dry_run:
                outcomes[plan.code] = PlanOutcome(
                    plan.code, "would_add_version" if current else "would_create",
                    current.version + 1 if current else 1)
            else:
                pending[plan.code] = PlanSubmitted(event_id=str(uuid.uuid4()),
                                                   occurred_at=utc_now(), plan=plan, actor=actor)
        if pending and key is not None:
            await ensure_topics(settings)
            async with make_broker(settings, name="plans-apply") as broker:
                for code, command in pending.items():
                    await publish_event(broker, settings, sign(command, key),
                                        TOPIC_TENANT_CONFIG, f"plan:{code}")
            versions = await _wait(store.db, pending, timeout)
            for code, version in versions.items():
                if version is None:  # equal to a version stored meanwhile
                    found = await plan_version(store.db, code)
                    outcomes[code] = PlanOutcome(code, "unchanged", found.version if found else 0)
                else:
                    outcomes[code] = PlanOutcome(code, "created" if version == 1 else
                                                 "new_version", version)
    return [outcomes[p.code] for p in plans]


async def _wait(
    db: Any, pending: dict[str, PlanSubmitted], seconds: float
) -> dict[str, int | None]:
    """Per code, the version its submission was stored as (None: processed without a new
    version, its plan being equal to the newest one by then)."""
    ids = {c.event_id: code for code, c in pending.items()}
    tracked = {tracking_id(PLAN_CONSUMER, e): code for e, code in ids.items()}
    deadline = time.monotonic() + seconds
    while True:
        stored: dict[str, int | None] = {
            ids[d["event_id"]]: int(d["version"])
            async for d in db[PLANS].find({"event_id": {"$in": list(ids)}})}
        async for d in db[PROCESSED_EVENTS].find({"_id": {"$in": list(tracked)}}):
            stored.setdefault(tracked[d["_id"]], None)
        refused = {ids[d["_id"]]: str(d["why"]["reason"])
                   async for d in db[AUDIT].find({"_id": {"$in": list(ids)}})}
        if refused and len(stored) + len(refused) == len(ids):
            raise PlansRefused(refused)
        if len(stored) == len(ids):
            return stored
        if time.monotonic() > deadline:
            missing = sorted(set(pending) - set(stored) - set(refused))
            raise TimeoutError(f"plans not stored within {seconds} s: {missing}")
        await asyncio.sleep(0.2)
