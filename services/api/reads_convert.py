"""The invoicer's read views (plain dicts) as the read endpoints' response models."""

from datetime import date
from decimal import Decimal
from typing import Any

from services.api.models_reads import (
    BalanceView,
    BillingErrorView,
    DashboardView,
    FlatFeeView,
    InvoiceDetail,
    InvoiceSummary,
    LineItemView,
    MeterUsage,
    Money,
    Reconciliation,
    ServiceUsage,
    TenantAtLimit,
    TenantReconciliation,
    TenantSummary,
    TimelineEvent,
    UsageView,
    decimal_text,
    monies,
)
from services.common.meters import meter_of
from services.invoicer.api import timeline
from services.usage_collector.api import Entitlement

Doc = dict[str, Any]


def tenant_summary(view: Doc) -> TenantSummary:
    """A tenant summary with its outstanding amounts as `Money`."""
    return TenantSummary(**{**view, "outstanding": monies(view["outstanding"])})


def invoice_summary(doc: Doc) -> InvoiceSummary:
    """A list row of an invoice document."""
    return InvoiceSummary(**_summary_fields(doc))


def _summary_fields(doc: Doc) -> Doc:
    paid = doc.get("paid_date")
    return {
        "invoice_number": doc["invoice_number"], "tenant_id": doc["tenant_id"],
        "status": doc["status"], "total": Money.of(int(doc["amount"]), doc["currency"]),
        "issue_date": date.fromisoformat(doc["issue_date"]),
        "due_date": date.fromisoformat(doc["due_date"]),
        "paid_date": date.fromisoformat(paid) if paid else None,
        "period_start": doc["period_start"], "period_end": doc["period_end"],
    }


def _line(li: Doc, currency: str) -> LineItemView:
    price = li.get("unit_price")
    unit = meter_of(li["meter"]).unit if li.get("meter") else None
    return LineItemView(
        kind=li["kind"], description=li["description"], meter=li.get("meter"),
        quantity=decimal_text(li["quantity"]), unit=unit,
        unit_price=None if price is None else decimal_text(price),
        amount=Money.of(int(li["amount"]), currency))


def invoice_detail(doc: Doc) -> InvoiceDetail:
    """An invoice document with its lines, totals (subtotal = flat fee, usage and
    adjustments; reductions = coupon and credits), timeline and payment fields."""
    currency = doc["currency"]
    lines = doc["line_items"]
    reductions = sum(int(li["amount"]) for li in lines if li["kind"] in ("coupon", "credit"))
    events = [TimelineEvent(
        event=e["event"], at=e["at"], status=e["status"], cause=e.get("cause"),
        refund_id=e.get("refund_id"),
        amount=Money.of(e["amount"], currency) if "amount" in e else None)
        for e in timeline(doc)]
    return InvoiceDetail(
        **_summary_fields(doc), tenant_name=doc.get("tenant_name"), timezone=doc["timezone"],
        line_items=[_line(li, currency) for li in lines],
        subtotal=Money.of(int(doc["amount"]) - reductions, currency),
        reductions=Money.of(reductions, currency),
        refunded=Money.of(int(doc.get("refunded_amount") or 0), currency),
        timeline=events, payment_reference=doc.get("payment_reference"),
        payment_method=doc.get("payment_method"), config_version=doc.get("config_version"))


def balance_view(tenant_id: str, totals: Doc) -> BalanceView:
    """`reports.totals` of a tenant's invoices."""
    return BalanceView(
        tenant_id=tenant_id, outstanding=monies(totals["outstanding_balance"]),
        total_paid=monies(totals["total_paid"]),
        total_refunded=monies(totals.get("total_refunded", {})),
        overdue_count=totals["overdue_count"], total_invoices=totals["total_invoices"])


def usage_view(view: Doc) -> UsageView:
    """An `usage_estimate` with amounts in the tenant's currency."""
    currency = view["currency"]
    fee = view["flat_fee"]
    return UsageView(
        tenant_id=view["tenant_id"], start=view["start"], end=view["end"],
        as_of=view["as_of"], config_version=view["config_version"],
        meters=[MeterUsage(
            meter=m["meter"], unit=m["unit"], quantity=decimal_text(m["quantity"]),
            estimated_cost=Money.of(m["estimated_cost"], currency), priced=m["priced"],
            services=[ServiceUsage(service=s["service"], quantity=decimal_text(s["quantity"]),
                                   events=s["events"]) for s in m["services"]])
            for m in view["meters"]],
        estimated_total=Money.of(view["estimated_total"], currency),
        flat_fee=None if fee is None else FlatFeeView(
            amount=Money.of(fee["amount"], currency), period_start=fee["period_start"],
            period_end=fee["period_end"], prorated=fee["prorated"]))


def _quantities(by_meter: dict[str, Decimal]) -> dict[str, str]:
    return {m: decimal_text(q) for m, q in sorted(by_meter.items())}


def _reconciliation(row: Doc | None) -> Reconciliation | None:
    if row is None:
        return None
    return Reconciliation(
        period_start=row["period_start"], period_end=row["period_end"],
        events_accepted_by_api=row["events_accepted_by_api"],
        events_aggregated=row["events_aggregated"],
        quantity_aggregated=_quantities(row["quantity_aggregated"]),
        quantity_billed=_quantities(row["quantity_billed"]),
        invoice_number=row.get("invoice_number"))


def dashboard_view(view: Doc) -> DashboardView:
    """`dashboard_view` with revenue as `Money`."""
    return DashboardView(
        total_tenants=view["total_tenants"], pending_invoices=view["pending_invoices"],
        overdue_invoices=view["overdue_invoices"], monthly_revenue=monies(view["monthly_revenue"]),
        month=view["month"], billing_errors=view["billing_errors"],
        open_billing_errors=[BillingErrorView(**e) for e in view["open_billing_errors"]],
        reconciliation=[TenantReconciliation(
            tenant_id=r["tenant_id"], current=_reconciliation(r["current"]),
            last_invoiced=_reconciliation(r["last_invoiced"])) for r in view["reconciliation"]])


def tenants_at_limits(rows: list[Entitlement]) -> list[TenantAtLimit]:
    """The collector's entitlements at or over a limit as dashboard rows (percent rounded
    down, so 100 means the limit is reached)."""
    return [TenantAtLimit(
        tenant_id=e.tenant_id, meter=e.meter, limit=decimal_text(e.limit),
        used=decimal_text(e.used), percent=int(e.used * 100 // e.limit) if e.limit else 0,
        allowed=e.allowed, hard=e.hard, period_start=e.period_start, period_end=e.period_end,
        as_of=e.as_of) for e in rows]
