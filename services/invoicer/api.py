"""The invoicer's public API for other services, operators' tools and the demo. Each function
opens its own MongoDB (and, where it publishes, Kafka) connection from `settings`.

    await apply_config_file(settings, path, actor_id="ops-admin", role="super")
        -> [Submission(tenant_id, event_id), ...]
    await wait_config_applied(settings, submissions, timeout=120)
    await config_applied(settings, tenant_ids) -> bool
    await run_cycle(settings, as_of) -> {"issued": [...numbers], "overdue": [...ids]} (only
        non-empty keys, so an idle run is falsy)
    await next_due_after(settings, after) -> datetime | None
    await export_invoices(settings) -> the demo's invoices.json entries (README.md)
    await write_invoice_pdfs(settings, directory) -> how many `<invoice_number>.pdf` written
    await refusals(db, before, limit, tenant_id=None) -> the refused configuration commands,
        newest first (the API's audit feed)

Read views for the Billing API, each on the caller's `AsyncDatabase` (`views.py`,
`estimate.py`): `tenant_rows`, `tenant_summary`, `status_counts`, `billing_config`,
`invoice_rows`, `invoice`, `timeline`, `invoice_pdf`, `balance`, `usage_estimate`,
`current_period`, `reconciliation`, `dashboard_view`; `subscription_of(db, tenant_id) ->
SubscriptionView | None` and `subscription_outcome(db, event_id) -> "applied" | refusal reason |
None` (docs/plans.md, "Subscriptions").

The plan catalog (docs/plans.md, "Plans"), on the caller's `AsyncDatabase`:
`list_plans(db)` (newest version of each plan, by code), `get_plan(db, code, version=None)`,
`plan_versions(db, code)` (oldest first); each version is a `PlanVersion`;
`validate_plan(plan)` the invoicer's checks beyond the contract (`InvalidMessage`);
`read_plans_file`, `apply_plans` -> [PlanOutcome, ...] (`billing plans apply`, the demo).

For the Billing API (on its own database handle and broker):

    validate_submission(command)        the invoicer's checks of a configuration command
    await coupon(db, code) -> catalog coupon document | None
    await current_config(db, tenant_id) -> BillingConfigSubmitted | None
    await publish_command(broker, settings, command, key) -> the signed command, published
        keyed by `key`
    await issue_period(settings, tenant_id, period_end, forced=None) -> IssueOutcome
        (an operator issue, `billing invoices issue`; raises `IssueRefused`, `LookupError`)

Names other services read: `SERVICE`, `CONSUMES` ((contract topic, consumer group) per
subscription of the worker) and `OUTBOXES` (outbox collections), defined in
`services.invoicer.names`; `InvoicerSettings` for the settings the functions take.
"""

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from contracts import TOPIC_TENANT_CONFIG, Actor, BillingConfigSubmitted
from contracts.base import Event
from services.common.invoice_document import Seller, UsagePricing, seller_of
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.common.signing import sign
from services.common.worker import make_broker, publish_event
from services.invoicer.adapters.catalog import catalog_coupon
from services.invoicer.adapters.plans import PlanVersion, current_plans, plan_history, plan_version
from services.invoicer.adapters.store import TENANTS, tenant_config
from services.invoicer.adapters.subscriptions import command_outcome as subscription_outcome
from services.invoicer.adapters.subscriptions import subscription_of
from services.invoicer.document import pricing_of
from services.invoicer.domain import authorize, code_is_hard_to_guess, validate_config
from services.invoicer.estimate import (
    current_period,
    dashboard_view,
    reconciliation,
    usage_estimate,
)
from services.invoicer.invoice_run import DEFAULT_BATCH
from services.invoicer.issue import Forced, IssueRefused, issue_for_period_end
from services.invoicer.names import CONSUMES, OUTBOXES, SERVICE
from services.invoicer.periods import local_date
from services.invoicer.plan_handlers import validate_plan
from services.invoicer.plans_file import PlanOutcome, PlansRefused, apply_plans, read_plans_file
from services.invoicer.records import issued_event
from services.invoicer.refusals import refusals
from services.invoicer.reports import (
    config_applied,
    export_invoices,
    list_invoices,
    next_due_after,
    open_store,
)
from services.invoicer.schedule import run_cycle as _run_cycle
from services.invoicer.settings import InvoicerSettings
from services.invoicer.subscriptions import SubscriptionView
from services.invoicer.tenants_file import read_tenants_file
from services.invoicer.views import (
    balance,
    billing_config,
    invoice,
    invoice_pdf,
    invoice_rows,
    status_counts,
    tenant_rows,
    tenant_summary,
    timeline,
)

__all__ = [
    "CONSUMES", "OUTBOXES", "SERVICE", "InvoicerSettings",
    "apply_config_file", "config_applied", "export_invoices", "next_due_after", "run_cycle",
    "wait_config_applied", "write_invoice_pdfs", "ConfigRefused", "Submission",
    "coupon", "current_config", "publish_command", "validate_submission", "code_is_hard_to_guess",
    "refusals", "Forced", "IssueOutcome", "IssueRefused", "issue_period",
    # read views for the Billing API (views.py, estimate.py)
    "balance", "billing_config", "current_period", "dashboard_view", "invoice",
    "invoice_pdf", "invoice_rows", "pdf_bytes", "reconciliation", "tenant_rows",
    "status_counts", "tenant_summary", "timeline", "usage_estimate",
    # the plan catalog (docs/plans.md, "Plans")
    "PlanVersion", "get_plan", "list_plans", "plan_versions", "validate_plan",
    "PlanOutcome", "PlansRefused", "apply_plans", "read_plans_file",
    # subscriptions (docs/plans.md)
    "SubscriptionView", "subscription_of", "subscription_outcome",
]


@dataclass(frozen=True)
class Submission:
    """One published configuration command: its tenant and its event id (unique per
    submission)."""

    tenant_id: str
    event_id: str


class ConfigRefused(RuntimeError):
    """The invoicer refused a submitted configuration; `refused` maps event id -> reason
    (`forbidden`, `validation_error`, `superseded`)."""

    def __init__(self, refused: dict[str, str]) -> None:
        super().__init__(f"configurations refused by the invoicer: {refused}")
        self.refused = refused


async def apply_config_file(
    settings: InvoicerSettings, path: Path, *, actor_id: str, role: str
) -> list[Submission]:
    """Publish one `BillingConfigSubmitted` per tenant of a tenants file (keyed by tenant id)
    as actor `actor_id` with `role`, each signed with `BILLING_COMMAND_SIGNING_KEY`
    (`services.common.signing`); each is a new submission with its own event id. The invoicer
    worker applies them (refusing them unless `role` is `super`). Raises `MissingSigningKey`
    without a key, before publishing anything."""
    key = settings.signing_key()
    commands = [sign(c, key) for c in read_tenants_file(path, Actor(user_id=actor_id, role=role))]
    await ensure_topics(settings)
    async with make_broker(settings, name="config-apply") as broker:
        for command in commands:
            await publish_event(broker, settings, command, TOPIC_TENANT_CONFIG, command.tenant_id)
    return [Submission(c.tenant_id, c.event_id) for c in commands]


async def wait_config_applied(
    settings: CommonSettings, submissions: Sequence[Submission],
    timeout: float = 120.0,  # noqa: ASYNC109
) -> None:
    """Poll until the invoicer has accepted each of these exact submissions (by event id) as a
    configuration version. Raises `ConfigRefused` as soon as every submission has an outcome
    and some were refused, `TimeoutError` after `timeout` seconds."""
    wanted = [s.event_id for s in submissions]
    deadline = time.monotonic() + timeout
    async with open_store(settings) as store:
        while True:
            outcomes = await store.submission_outcomes(wanted)
            if len(outcomes) == len(set(wanted)):
                refused = {k: v for k, v in outcomes.items() if v != "applied"}
                if refused:
                    raise ConfigRefused(refused)
                return
            if time.monotonic() > deadline:
                missing = sorted(s.tenant_id for s in submissions if s.event_id not in outcomes)
                raise TimeoutError(
                    f"configurations not applied within {timeout} s: {missing}")
            await asyncio.sleep(0.2)


async def run_cycle(settings: CommonSettings, as_of: datetime) -> dict[str, list[str]]:
    """Run the billing cycle once at billing clock `as_of`; events go through the outbox (the
    running invoicer worker relays them)."""
    async with open_store(settings) as store:
        await store.ensure_indexes()
        batch = getattr(settings, "invoicer_issue_batch", DEFAULT_BATCH)
        report = await _run_cycle(store, as_of, batch)
    return {k: v for k, v in (("issued", report.issued), ("overdue", report.overdue)) if v}


async def write_invoice_pdfs(settings: CommonSettings, directory: Path) -> int:
    """Write `<invoice_number>.pdf` (current status and payment fields, the seller of
    `settings`, each usage line's tiers) for every invoice."""
    async with open_store(settings) as store:
        docs = await list_invoices(store)
        pricings = [await pricing_of(store, doc) for doc in docs]
    await asyncio.to_thread(_write_pdfs, directory, docs, pricings, seller_of(settings))
    return len(docs)


def _write_pdfs(directory: Path, docs: list[dict[str, Any]],
                pricings: list[dict[str, UsagePricing]], seller: Seller) -> None:
    from services.common.invoice_pdf import render_invoice_pdf

    directory.mkdir(parents=True, exist_ok=True)
    for doc, pricing in zip(docs, pricings, strict=True):
        (directory / f"{doc['invoice_number']}.pdf").write_bytes(
            pdf_bytes(doc, render_invoice_pdf, pricing=pricing, seller=seller))


def pdf_bytes(doc: dict[str, Any], render: Any, *,
              pricing: Mapping[str, UsagePricing] | None = None,
              seller: Seller | None = None) -> bytes:
    """Render one invoice document with `render` (`render_invoice_pdf`): its current status
    and payment fields, `pricing` (meter -> tiers, from `pricing_of`) and `seller` (default:
    the default seller)."""
    paid = doc.get("paid_date")
    result: bytes = render(
        issued_event(doc), status=doc["status"],
        paid_date=date.fromisoformat(paid) if paid else None,
        payment_reference=doc.get("payment_reference"),
        payment_method=doc.get("payment_method"), tenant_name=doc.get("tenant_name"),
        seller=seller, pricing=pricing,
    )
    return result


def validate_submission(command: BillingConfigSubmitted) -> None:
    """The invoicer's own checks of a configuration command before it is published: the
    actor's role (`Forbidden`) and the rules beyond the contract's fields (price plan, coupon
    code, credit ids: `InvalidMessage("validation_error")`); both are `PermanentError`s whose
    `detail` says what is wrong (docs/configuration.md)."""
    authorize(command)
    validate_config(command)


async def coupon(db: AsyncDatabase[dict[str, Any]], code: str) -> dict[str, Any] | None:
    """The catalog coupon `code` (`invoicer_coupons`: amount_off in minor units, currency,
    duration, duration_in_periods, max_redemptions, redemptions, redeemed_by), or None."""
    return await catalog_coupon(db, code)


async def current_config(
    db: AsyncDatabase[dict[str, Any]], tenant_id: str
) -> BillingConfigSubmitted | None:
    """The tenant's current configuration (its latest accepted version), or None for a tenant
    the invoicer does not know."""
    doc = await db[TENANTS].find_one({"_id": tenant_id}, projection={"config": 1})
    return None if doc is None else tenant_config(doc)


async def publish_command(
    broker: KafkaBroker, settings: InvoicerSettings, command: Event, key: str
) -> Event:
    """Sign `command` (a configuration or operator command: it has a `signature` field) with
    the command signing key of `settings` (`BILLING_COMMAND_SIGNING_KEY`; `MissingSigningKey`
    without one) and publish it to `billing.tenant-config.v1` keyed by `key` (the tenant id, or
    `coupon:{code}` for a coupon's creation); returns the signed command once the broker
    acknowledged it."""
    signed = sign(command, settings.signing_key())
    await publish_event(broker, settings, signed, TOPIC_TENANT_CONFIG, key)
    return signed


@dataclass(frozen=True)
class IssueOutcome:
    """An operator issue's result: the invoice number of the period, and whether this call
    issued it (`issued` False: it was invoiced already, `number` None if that invoice cannot
    be found by its local end date)."""

    number: str | None
    issued: bool


async def issue_period(
    settings: CommonSettings, tenant_id: str, period_end: date, *,
    forced: Forced | None = None, as_of: datetime | None = None,
) -> IssueOutcome:
    """Issue the invoice of `tenant_id`'s period ending on local date `period_end` at billing
    clock `as_of` (default now), with the rules of `billing invoices issue`
    (docs/billing-periods.md, "Operator issue"): tenants that auto-generate need `forced`
    (who and why, audited in `invoicer_audit`); the period must have ended and continue the
    invoiced chain without gap or overlap. Raises `LookupError` for a tenant without a
    configuration and `IssueRefused` (its message says why) when a rule refuses. The invoice
    events go through the invoicer's outbox (the running worker relays them)."""
    async with open_store(settings) as store:
        await store.ensure_indexes()
        number = await issue_for_period_end(store, tenant_id, period_end, as_of=as_of,
                                            forced=forced)
        if number is not None:
            return IssueOutcome(number, True)
        found = [d["invoice_number"] for d in await store.invoices_of(tenant_id)
                 if local_date(d["period_end"], d["timezone"]) == period_end]
    return IssueOutcome(found[0] if found else None, False)


async def list_plans(db: AsyncDatabase[dict[str, Any]]) -> list[PlanVersion]:
    """The newest version of every plan in the catalog, ordered by code."""
    return await current_plans(db)


async def get_plan(
    db: AsyncDatabase[dict[str, Any]], code: str, version: int | None = None
) -> PlanVersion | None:
    """Version `version` of plan `code` (the newest when None), or None when it does not
    exist."""
    return await plan_version(db, code, version)


async def plan_versions(db: AsyncDatabase[dict[str, Any]], code: str) -> list[PlanVersion]:
    """Every version of plan `code`, oldest first (empty for an unknown code)."""
    return await plan_history(db, code)
