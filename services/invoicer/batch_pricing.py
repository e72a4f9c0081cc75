"""Pricing a batch of the invoice run from its bulk reads (pure: no I/O).

Each item is priced by the same function as a per-tenant issue (`issue_pricing.price_issue`),
in due order, from the batch's reads (`adapters/batch_reads.BatchReads`) and the usage read
before the transaction (`Prefetched`: the tenant's usage marker, then the period's totals).
The batch path is kept to the common case; an item outside it stops the batch there
(`BatchPlan.stop`) and is issued by the per-tenant path, which handles everything
(docs/invoicing.md, "The invoice run"):

- its invoice exists: skipped (issued by this or another process), not a stop;
- no tenant document, or an invoice overlapping the period;
- late usage: earlier periods' billed records whose usage changed after their marker, or a
  record without a marker (the per-tenant path adjusts and supersedes them);
- a coupon whose redemption count is not created yet;
- anything that raises while pricing (a billing error, recorded by the per-tenant path).

Coupon redemption counts carry over from one item to the next inside the batch, so two
tenants of one batch cannot both take a code's last redemption: the counts each item sees
are those it would have read had the items before it been issued one by one.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from contracts.base import utc_now
from services.invoicer.adapters.batch_reads import BatchReads
from services.invoicer.adapters.usage import UsageTotal
from services.invoicer.domain import invoice_id
from services.invoicer.issue_pricing import config_for, price_issue
from services.invoicer.late_usage import BilledSpan, billed_spans, meter_totals
from services.invoicer.ledger import Ledger
from services.invoicer.periods import Period
from services.invoicer.records import IssueDraft

Doc = dict[str, Any]


@dataclass(frozen=True)
class BatchItem:
    """One due (tenant, period) of the run; `waiting` = the tenant's later due periods (held
    behind this one if it fails)."""

    period: Period
    tenant_id: str
    waiting: int = 0

    @property
    def invoice_id(self) -> str:
        """The period's deterministic invoice id."""
        return invoice_id(self.tenant_id, self.period.start_date)


@dataclass(frozen=True)
class LateCheck:
    """The question that decides whether an item has late usage: did usage of one of the
    tenant's billed `periods` (`late_usage.billed_spans`, all with markers) change after its
    own marker (`late_usage.changed_periods`)? `records` identifies the billed records it was
    asked for (`_id`, `rev`, `usage_marker`)."""

    records: tuple[tuple[str, int, int], ...]
    periods: tuple[BilledSpan, ...]


@dataclass(frozen=True)
class Prefetched:
    """What an item read outside the transaction: the tenant's usage `marker`, then the
    period's usage `totals`; `late` = the answer to `check` (None: no earlier billed record)."""

    marker: int
    totals: list[UsageTotal]
    check: LateCheck | None = None
    late: bool = False


class MissingMarker(Exception):
    """A billed record without a usage marker: always compared again (per-tenant path)."""


def late_check(item: BatchItem, billed: Sequence[Doc]) -> LateCheck | None:
    """The `LateCheck` of `item` over the tenant's billed records `billed` (any currency: a
    superset of what the per-tenant path asks about, so "no change" here implies "no change"
    there), or None without earlier records. Raises `MissingMarker`."""
    before = [d for d in billed if d["period_end"] <= item.period.start]
    if not before:
        return None
    if any(d.get("usage_marker") is None for d in before):
        raise MissingMarker(item.tenant_id)
    return LateCheck(
        records=tuple(sorted((d["_id"], int(d.get("rev") or 0), int(d["usage_marker"]))
                             for d in before)),
        periods=tuple(billed_spans(before)))


@dataclass
class BatchPlan:
    """The priced prefix of a batch: `drafts` to issue in due order, `skipped` invoice ids
    already issued, and `stop` = the index of the first item the batch path leaves to the
    per-tenant path (None: every item was priced or skipped); `redemptions` = per coupon code,
    (the count read, the tenants taking a redemption in order)."""

    drafts: list[IssueDraft] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    stop: int | None = None
    redemptions: dict[str, tuple[int, list[str]]] = field(default_factory=dict)


def _overlaps(invoices: Sequence[Doc], period: Period) -> bool:
    return any(d["period_start"] < period.end and d["period_end"] > period.start
               for d in invoices)


def price_batch(items: Sequence[BatchItem], pre: dict[str, Prefetched], reads: BatchReads,
                late: dict[str, bool]) -> BatchPlan:
    """Price `items` in order until the first one the batch path does not handle (see the
    module docstring). `pre` is by invoice id; `late` = by invoice id, whether the item has
    late usage as decided in the transaction (missing: as `pre` decided)."""
    plan = BatchPlan()
    for index, item in enumerate(items):
        inv_id, tenant_id = item.invoice_id, item.tenant_id
        invoices = reads.invoices.get(tenant_id, [])
        if any(d["_id"] == inv_id for d in invoices):
            plan.skipped.append(inv_id)
            continue
        draft = _price(item, pre[inv_id], reads, late.get(inv_id, pre[inv_id].late), plan)
        if draft is None:
            plan.stop = index
            return plan
        plan.drafts.append(draft)
    return plan


def _price(item: BatchItem, pre: Prefetched, reads: BatchReads, late: bool,
           plan: BatchPlan) -> IssueDraft | None:
    """One item's draft, or None when the per-tenant path must issue it."""
    tenant = reads.tenants.get(item.tenant_id)
    if tenant is None or late or _overlaps(reads.invoices.get(item.tenant_id, []), item.period):
        return None
    try:
        config, version = config_for(tenant, reads.versions.get(item.tenant_id, []),
                                     item.period)
        coupon = config.coupon
        if coupon is not None and coupon.code not in reads.coupon_counts:
            return None
        seen, takers = plan.redemptions.get(
            coupon.code, (reads.coupon_counts[coupon.code], [])) if coupon else (0, [])
        draft = price_issue(
            item.invoice_id, item.tenant_id, item.period, config, version, Ledger.of(tenant),
            meter_totals(pre.totals), pre.marker, utc_now(), [], [], seen + len(takers),
            reads.subscriptions.get(item.tenant_id))
    except Exception:  # priced again by the per-tenant path, which records the billing error
        return None
    if coupon is not None and draft.draft.coupon_applied and draft.coupon_uses == 0:
        plan.redemptions[coupon.code] = (seen, [*takers, item.tenant_id])
    return draft
