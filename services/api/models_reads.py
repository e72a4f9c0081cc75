"""Response models of the read endpoints (docs/api-endpoints.md). Amounts are `Money`: minor
units with their currency and a formatted text; quantities and prices are decimal strings
(exact); instants are ISO 8601 in UTC."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from contracts import BillingSettings, PricePlan
from services.common.invoice_pdf import format_money


class Money(BaseModel):
    """An amount: `amount` in the currency's minor units (ISO 4217), `formatted` for people."""

    amount: int
    currency: str
    formatted: str

    @classmethod
    def of(cls, amount: int, currency: str) -> "Money":
        """`amount` minor units of `currency`."""
        return cls(amount=amount, currency=currency, formatted=format_money(amount, currency))


def monies(by_currency: dict[str, int]) -> list["Money"]:
    """Amounts per currency (minor units) as `Money`, by currency code."""
    return [Money.of(v, c) for c, v in sorted(by_currency.items())]


def decimal_text(value: Decimal | Any) -> str:
    """A quantity or price as plain decimal text (no exponent)."""
    return format(Decimal(str(value)), "f")


class TenantSummary(BaseModel):
    """A tenant: its current configuration's basics and what it owes."""

    tenant_id: str
    name: str
    currency: str
    billing_frequency: str
    timezone: str
    config_version: int = Field(description="the latest accepted configuration version")
    outstanding: list[Money] = Field(description="unpaid invoices per currency")
    overdue_count: int


class CouponView(BaseModel):
    """The configured coupon and how many of the tenant's invoices it reduced."""

    code: str
    amount_off: int
    duration: str
    duration_in_periods: int | None = None
    max_redemptions: int | None = None
    invoices_reduced: int


class CreditView(BaseModel):
    """A configured credit: granted `amount`, `used` and `remaining` (minor units)."""

    credit_id: str
    amount: int
    reason: str
    granted_at: datetime
    used: int
    remaining: int


class ConfigInForce(BaseModel):
    """The configuration version in force now."""

    version: int
    settings: BillingSettings
    timezone: str
    effective_from: date
    price_plan: PricePlan
    coupon: CouponView | None
    credits: list[CreditView]


class VersionRow(BaseModel):
    """One accepted version: its submission id (`event_id`) and who submitted it when
    (`actor` null for a tenant key)."""

    version: int
    event_id: str
    submitted_at: datetime
    accepted_at: datetime
    actor: dict[str, str] | None
    effective_from: date


class SubmissionOutcome(BaseModel):
    """What became of one submission: `applied` (with its version) or `refused` (reason)."""

    outcome: str
    at: datetime
    version: int | None = None
    reason: str | None = None
    detail: str | None = None


class BillingConfigView(BaseModel):
    """A tenant's configuration in force, its history and its recent submissions by id."""

    tenant_id: str
    current_version: int
    in_force: ConfigInForce
    history: list[VersionRow]
    submissions: dict[str, SubmissionOutcome]


class InvoiceSummary(BaseModel):
    """An invoice in a list."""

    invoice_number: str
    tenant_id: str
    status: str
    total: Money
    issue_date: date
    due_date: date
    paid_date: date | None
    period_start: datetime
    period_end: datetime


class LineItemView(BaseModel):
    """One invoice line; `unit_price` in major units (decimal text) where it applies."""

    kind: str
    description: str
    meter: str | None
    quantity: str
    unit: str | None
    unit_price: str | None
    amount: Money


class TimelineEvent(BaseModel):
    """`issued`, `status_changed` or `refunded`, with the status after it and its cause."""

    event: str
    at: datetime
    status: str
    cause: str | None = None
    refund_id: str | None = None
    amount: Money | None = None


class InvoiceDetail(InvoiceSummary):
    """An invoice with its lines, totals, timeline and payment."""

    tenant_name: str | None
    timezone: str
    line_items: list[LineItemView]
    subtotal: Money = Field(description="flat fee, usage and adjustments")
    reductions: Money = Field(description="coupon and credits (zero or negative)")
    refunded: Money
    timeline: list[TimelineEvent]
    payment_reference: str | None
    payment_method: str | None
    config_version: int | None


class BalanceView(BaseModel):
    """A tenant's balance per currency and its invoice counts."""

    tenant_id: str
    outstanding: list[Money]
    total_paid: list[Money] = Field(description="net of refunds")
    total_refunded: list[Money]
    overdue_count: int
    total_invoices: int


class ServiceUsage(BaseModel):
    """A meter's usage in one service."""

    service: str
    quantity: str
    events: int


class MeterUsage(BaseModel):
    """A meter's usage over the interval and its estimated cost."""

    meter: str
    unit: str
    quantity: str
    estimated_cost: Money
    priced: bool = Field(description="false: the price plan has no charge for this meter")
    services: list[ServiceUsage]


class FlatFeeView(BaseModel):
    """The flat fee of the billing period containing now (prorated for a stub period)."""

    amount: Money
    period_start: datetime
    period_end: datetime
    prorated: bool


class UsageView(BaseModel):
    """A tenant's usage over [start, end) priced with the configuration in force at `end`."""

    tenant_id: str
    start: datetime
    end: datetime
    as_of: datetime | None = Field(description="start of the newest hour with usage")
    config_version: int
    meters: list[MeterUsage]
    estimated_total: Money = Field(description="usage charges of the interval only")
    flat_fee: FlatFeeView | None


class BillingErrorView(BaseModel):
    """An open billing error: a period the cycle could not invoice."""

    invoice_id: str
    tenant_id: str
    period_start: str
    period_end: str
    reason: str
    detail: str
    attempts: int
    later_periods_waiting: int
    first_failed_at: str
    last_failed_at: str


class Reconciliation(BaseModel):
    """A period's usage from ingestion to invoice; quantities as decimal text by meter."""

    period_start: datetime
    period_end: datetime
    events_accepted_by_api: int
    events_aggregated: int
    quantity_aggregated: dict[str, str]
    quantity_billed: dict[str, str]
    invoice_number: str | None = None


class TenantReconciliation(BaseModel):
    """One tenant's reconciliation: its current period and its last invoiced one."""

    tenant_id: str
    current: Reconciliation | None
    last_invoiced: Reconciliation | None


class TenantAtLimit(BaseModel):
    """A tenant whose usage of a meter this period is at or over 80 % of its plan's limit
    (docs/limits.md). Quantities are decimal strings in the meter's unit."""

    tenant_id: str
    meter: str
    limit: str
    used: str
    percent: int = Field(description="used / limit in whole percent, rounded down")
    allowed: bool = Field(description="false once a hard limit is reached")
    hard: bool
    period_start: datetime
    period_end: datetime
    as_of: datetime


class DashboardView(BaseModel):
    """The operators' dashboard."""

    total_tenants: int
    pending_invoices: int
    overdue_invoices: int
    monthly_revenue: list[Money] = Field(description="paid in `month`, net of its refunds")
    month: str
    billing_errors: int
    open_billing_errors: list[BillingErrorView]
    reconciliation: list[TenantReconciliation]
    tenants_at_limits: list[TenantAtLimit] = Field(
        default_factory=list, description="most used first (docs/limits.md)")
