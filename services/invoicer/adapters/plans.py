"""The plan catalog in MongoDB (docs/plans.md, "Plans").

    invoicer_plans       one document per plan version, `_id` = "{code}|{version}": `code`,
                         `version` (1, 2, ...), `plan` (the `Plan` as JSON-compatible data),
                         `submitted_at`, `submitted_by`, `event_id`
    invoicer_plan_heads  one document per plan code, `_id` = the code: `version` (the newest)

A new version is written in the caller's transaction: the head's version is read and bumped
with a guard on the value read, so two submissions of one code at once get consecutive
versions (the loser's transaction conflicts and is retried by the caller). Versions are never
changed or deleted: subscriptions keep pointing at theirs.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from contracts import Plan, PlanSubmitted

PLANS = "invoicer_plans"
PLAN_HEADS = "invoicer_plan_heads"
Doc = dict[str, Any]


@dataclass(frozen=True)
class PlanVersion:
    """One stored version of a plan: `version` >= 1, the `plan`, when and by whom it was
    submitted."""

    version: int
    plan: Plan
    submitted_at: datetime
    submitted_by: str

    @property
    def code(self) -> str:
        """The plan's code."""
        return self.plan.code


def plan_key(code: str, version: int) -> str:
    """The `_id` of version `version` of plan `code`."""
    return f"{code}|{version}"


def _version_of(doc: Doc) -> PlanVersion:
    return PlanVersion(int(doc["version"]), Plan.model_validate(doc["plan"]),
                       doc["submitted_at"], doc["submitted_by"])


async def add_plan_version(
    db: AsyncDatabase[Doc], command: PlanSubmitted, session: AsyncClientSession
) -> int:
    """Store the plan of `command` as the next version of its code (1 for a new code), inside
    `session`'s transaction; returns that version. Raises PyMongo's `OperationFailure` (a
    write conflict or duplicate key) when another submission of the code won: the caller's
    transaction is retried."""
    code = command.plan.code
    head = await db[PLAN_HEADS].find_one({"_id": code}, session=session)
    version = int(head["version"]) + 1 if head else 1
    if head:
        await db[PLAN_HEADS].update_one({"_id": code, "version": version - 1},
                                        {"$set": {"version": version}}, session=session)
    else:
        await db[PLAN_HEADS].insert_one({"_id": code, "version": version}, session=session)
    await db[PLANS].insert_one(
        {"_id": plan_key(code, version), "code": code, "version": version,
         "plan": command.plan.model_dump(mode="json"), "submitted_at": command.occurred_at,
         "submitted_by": command.actor.user_id, "event_id": command.event_id},
        session=session)
    return version


async def plan_version(
    db: AsyncDatabase[Doc], code: str, version: int | None = None,
    session: AsyncClientSession | None = None,
) -> PlanVersion | None:
    """Version `version` of plan `code` (the newest when None), or None when there is none."""
    if version is None:
        head = await db[PLAN_HEADS].find_one({"_id": code}, session=session)
        if head is None:
            return None
        version = int(head["version"])
    doc = await db[PLANS].find_one({"_id": plan_key(code, version)}, session=session)
    return _version_of(doc) if doc else None


async def plan_history(db: AsyncDatabase[Doc], code: str) -> list[PlanVersion]:
    """Every version of plan `code`, oldest first (empty for an unknown code)."""
    return [_version_of(d) async for d in db[PLANS].find({"code": code}).sort("version", 1)]


async def current_plans(db: AsyncDatabase[Doc]) -> list[PlanVersion]:
    """The newest version of every plan, by code."""
    heads = {d["_id"]: int(d["version"]) async for d in db[PLAN_HEADS].find({})}
    keys = [plan_key(code, v) for code, v in sorted(heads.items())]
    found = {d["_id"]: _version_of(d) async for d in db[PLANS].find({"_id": {"$in": keys}})}
    return [found[k] for k in keys if k in found]
