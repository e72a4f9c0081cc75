"""The pricing step of one issue, shared by the per-tenant issue (`cycle.read_and_price`) and
the invoice run's batches (`batch_pricing`): which configuration prices a period, and the
priced `IssueDraft` from what was read. Pure: no I/O; the callers read the inputs (in the
issuing transaction's snapshot, usage after its marker) and pass them in, so the two paths
cannot apply different rules.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

from contracts import BillingConfigSubmitted
from services.invoicer.adapters.store import tenant_config
from services.invoicer.adapters.subscriptions import changes_in
from services.invoicer.late_usage import Superseded
from services.invoicer.ledger import Ledger, coupon_in_effect
from services.invoicer.periods import Period
from services.invoicer.pricing import Adjustment
from services.invoicer.proration import price_period
from services.invoicer.records import IssueDraft
from services.invoicer.subscriptions import proration_lines
from services.invoicer.versions import ConfigVersion, in_force

Doc = dict[str, Any]


def config_for(
    tenant: Doc, versions: list[ConfigVersion], period: Period
) -> tuple[BillingConfigSubmitted, int]:
    """(configuration, its version number) that prices `period` of the tenant document
    `tenant`: the version in force at the period's end (a version a subscription scheduled
    for that very end does not count; docs/billing-periods.md, "Version in force"), else the
    tenant's current one, with a redeemed catalog coupon in place of its own
    (`ledger.coupon_in_effect`)."""
    version = in_force(versions, period.end, ending=True) if versions else None
    config = version.command if version is not None else tenant_config(tenant)
    config = coupon_in_effect(config, tenant, period.end)
    return config, version.number if version is not None else int(tenant["version"])


def coupon_uses(config: BillingConfigSubmitted, ledger: Ledger) -> int:
    """How many of this tenant's invoices the configuration's coupon already reduced."""
    coupon = config.coupon
    return ledger.coupon_uses.get(coupon.code, 0) if coupon else 0


def price_issue(
    inv_id: str, tenant_id: str, period: Period, config: BillingConfigSubmitted,
    config_version: int, ledger: Ledger, usage: dict[str, Decimal], marker: int,
    priced_at: datetime, adjustments: list[Adjustment], superseded: list[Superseded],
    code_redemptions: int, subscription: Doc | None,
) -> IssueDraft:
    """The priced issue of `period` (`proration.price_period`): `usage` is each meter's
    total (`late_usage.meter_totals`) read after the usage `marker`; `adjustments` and
    `superseded` the late usage of earlier periods; `code_redemptions` the coupon code's count
    over all tenants; `subscription` the tenant's subscription document (its upgrades inside
    the period add proration lines, docs/plans.md). Raises decimal errors or
    `AmountOutOfRange` when the period cannot be priced."""
    uses = coupon_uses(config, ledger)
    changes = changes_in(subscription, period)
    draft = price_period(config, period, ledger, usage, adjustments, uses, code_redemptions,
                         prorations=proration_lines(period, changes),
                         base_fee=changes[0].old_fee if changes else None)
    return IssueDraft(
        invoice_id=inv_id, tenant_id=tenant_id, period=period, config=config,
        config_version=config_version, ledger=ledger, draft=draft, usage=usage, marker=marker,
        priced_at=priced_at, superseded=superseded, coupon_uses=uses,
        code_redemptions=code_redemptions,
    )
