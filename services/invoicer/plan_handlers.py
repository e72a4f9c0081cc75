"""The use case of `PlanSubmitted` read from `billing.tenant-config.v1` (docs/plans.md,
"Plans").

Verified like the other signed operator commands (signature under the platform's command
signing key, then the actor's role: `super` only), then applied in one MongoDB transaction with
its processed-event record (idempotent per event id). A refusal is audited in `invoicer_audit`
before it is raised (the worker dead-letters it with its reason).
"""

import logging

from pymongo.asynchronous.client_session import AsyncClientSession

from contracts import Plan, PlanSubmitted
from contracts.base import utc_now
from services.common.errors import Forbidden, InvalidMessage, PermanentError
from services.invoicer.adapters.plans import add_plan_version, plan_version
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.domain import SUPER_ROLE
from services.invoicer.handlers import refuse_unless_signed
from services.invoicer.metrics import CONFIG_REFUSALS

log = logging.getLogger(__name__)
#: The consumer name of the processed-event records of plan submissions.
PLAN_CONSUMER = "invoicer.plan"


async def apply_signed_plan(store: InvoicerStore, command: PlanSubmitted, key: bytes) -> int | None:
    """Verify `command`'s signature under `key`, then apply it (`apply_plan`). An unsigned or
    badly signed command is audited and refused with `Forbidden` (dead letter `forbidden`)
    before anything else is looked at."""
    await refuse_unless_signed(
        store, command, key, f"plan command {command.event_id!r} for plan {command.plan.code!r}")
    return await apply_plan(store, command)


async def apply_plan(store: InvoicerStore, command: PlanSubmitted) -> int | None:
    """Store a verified plan submission as the next version of its code; returns the new
    version (1 for a new code), or None when nothing changed: the event id was processed
    already (a redelivery), or the plan equals the code's newest version (applying one file
    again adds no version).

    Raises, after auditing the refusal, `Forbidden` unless the actor's role is `super` and
    `InvalidMessage("validation_error")` for a plan that breaks `validate_plan`."""
    try:
        if command.actor.role != SUPER_ROLE:
            raise Forbidden(
                f"actor {command.actor.user_id!r} with role {command.actor.role!r} may not "
                f"submit plans (role {SUPER_ROLE} required)")
        validate_plan(command.plan)
        version = await store.transaction(lambda session: _apply(store, command, session))
    except PermanentError as exc:
        await store.record_refusal(command, exc.reason, exc.detail, utc_now())
        CONFIG_REFUSALS.labels(cause=exc.reason).inc()
        raise
    if version is not None:
        log.info("plan %s version %s accepted", command.plan.code, version)
    return version


async def _apply(
    store: InvoicerStore, command: PlanSubmitted, session: AsyncClientSession
) -> int | None:
    if await store.seen(PLAN_CONSUMER, command.event_id, session):
        return None
    current = await plan_version(store.db, command.plan.code, session=session)
    version = None
    if current is None or current.plan != command.plan:
        version = await add_plan_version(store.db, command, session)
    await store.mark_processed(PLAN_CONSUMER, command.event_id, session)
    return version


def validate_plan(plan: Plan) -> None:
    """The invoicer's checks of a plan beyond its contract: its price plan prices each meter
    at most once. Raises `InvalidMessage("validation_error")` naming the meters."""
    meters = [c.meter for c in plan.price_plan.charges]
    if len(meters) != len(set(meters)):
        raise InvalidMessage("validation_error", f"price plan prices a meter twice: {meters}")
