"""The invoice as finance staff read it: every text of the invoice PDF, built from an
`InvoiceIssued` and formatted for people (docs/invoicing.md, "The invoice document");
`services.common.invoice_pdf` only draws it.

- Quantities in full (never cut) with their meter's unit (`services.common.meters`):
  `1,043.384722 vCPU-hours`; meters by the names people read (`CPU`, `Memory`).
- Unit prices formatted like amounts and exact: `$0.04`, `$0.005`, `KES 5.00`.
- The period as its first and last day in the tenant's time zone (an invoice's period ends
  at an exclusive instant: the last day is the day before it).
- Graduated and volume usage lines followed by one row per tier with its quantity, unit price
  and amount (`UsagePricing`, computed by the invoicer from the price plan that priced the
  invoice). A tier's amount is shown rounded to the minor unit; the line's amount is the exact
  sum of the tiers rounded once, so the shown tiers may differ from it by a minor unit.
- A subtotal of the charges, then the coupon and credits, then the total.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from contracts.invoices import InvoiceIssued, LineItem
from services.common.meters import meter_of
from services.common.money_format import (
    format_money,
    format_price,
    format_quantity,
    format_rounded,
)
from services.common.settings import CommonSettings

REDUCTIONS = ("coupon", "credit")
_STATUS_LABELS = {"pending_payment": "Pending payment", "paid": "Paid",
                  "failed": "Payment failed", "overdue": "Overdue"}
_MODEL_LABELS = {"per unit": "", "graduated": ", graduated tiers", "volume": ", volume tiers",
                 "package": ", in packages"}


@dataclass(frozen=True)
class Seller:
    """Who issues the invoices: `name`, postal `address` (lines separated by newlines) and
    `tax_id` (settings `BILLING_SELLER_NAME`, `BILLING_SELLER_ADDRESS`,
    `BILLING_SELLER_TAX_ID`; docs/operations.md, "Seller details")."""

    name: str = "Billing Platform"
    address: str = ""
    tax_id: str = ""

    def address_lines(self) -> list[str]:
        """The address's non-empty lines."""
        return [line.strip() for line in self.address.splitlines() if line.strip()]


def seller_of(settings: CommonSettings) -> Seller:
    """The seller configured in `settings`."""
    return Seller(settings.seller_name, settings.seller_address, settings.seller_tax_id)


@dataclass(frozen=True)
class TierRow:
    """One tier of a graduated or volume charge as it priced a usage line: tier `index`
    (1-based), `lower` (exclusive) and `upper` (inclusive, None = unbounded) bounds in units
    after the included quantity, the `quantity` it priced, `unit_price` and `flat_price`
    (major units) and its exact `amount` (major units, not rounded)."""

    index: int
    lower: Decimal
    upper: Decimal | None
    quantity: Decimal
    unit_price: Decimal
    flat_price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class UsagePricing:
    """How the price plan priced one meter's usage line: its `model` (`per_unit`,
    `graduated`, `volume`, `package`), the `included` quantity taken off first, the package's
    `package_size` and `package_price` (major units) and the tiers it used."""

    model: str
    included: Decimal = Decimal(0)
    package_size: Decimal | None = None
    package_price: Decimal | None = None
    tiers: tuple[TierRow, ...] = ()


@dataclass(frozen=True)
class Row:
    """A row of the line-item table; `detail` rows (tiers, included quantity) explain the line
    above them and carry no amount of their own to add."""

    description: str
    quantity: str
    unit_price: str
    amount: str
    detail: bool = False


@dataclass(frozen=True)
class InvoiceDocument:
    """Every text of one invoice document, formatted. `facts` are the (label, value) pairs of
    the header; `reductions` the coupon and credit lines after the subtotal; `payment` the
    (label, value) pairs of the status block."""

    number: str
    seller: Seller
    facts: tuple[tuple[str, str], ...]
    rows: tuple[Row, ...]
    subtotal: str
    reductions: tuple[tuple[str, str], ...]
    total: str
    payment: tuple[tuple[str, str], ...]
    note: str | None


def format_day(day: date) -> str:
    """`15 Jun 2013` (English month abbreviations, as on the invoice)."""
    return f"{day.day} {day:%b %Y}"


def period_days(start: datetime, end: datetime, timezone: str) -> tuple[date, date]:
    """The first and last day of the period [`start`, `end`) in `timezone`: the day of `start`
    and the day of the last instant before `end` (raises `ZoneInfoNotFoundError` for an
    unknown zone)."""
    zone = ZoneInfo(timezone)
    last = (end.astimezone(zone) - timedelta(microseconds=1)).date()
    return start.astimezone(zone).date(), last


def readable_description(item: LineItem) -> str:
    """The line's description with its meter key replaced by the meter's name (`cpu_hours
    (per unit)` -> `CPU`, `cpu_hours (graduated)` -> `CPU, graduated tiers`), plus its
    service when it has one."""
    text = item.description
    if item.meter:
        meter = meter_of(item.meter)
        for model, label in _MODEL_LABELS.items():
            text = text.replace(f"{item.meter} ({model})", meter.name + label)
        text = text.replace(item.meter, meter.name).replace(" included", f" {meter.unit} included")
    return f"{text} ({item.service})" if item.service else text


def _tier_label(tier: TierRow, model: str, unit: str, currency: str) -> str:
    lower, upper = format_quantity(tier.lower), tier.upper
    if upper is None:
        bounds = f"over {lower} {unit}" if tier.lower else f"any {unit}"
    elif tier.lower:
        bounds = f"over {lower} up to {format_quantity(upper)} {unit}"
    else:
        bounds = f"up to {format_quantity(upper)} {unit}"
    label = f"Tier {tier.index}: {bounds}"
    if model == "volume":
        label = f"Volume tier {tier.index} ({bounds}), every unit"
    if tier.flat_price:
        label += f", plus {format_price(tier.flat_price, currency)} flat"
    return label


def usage_rows(item: LineItem, currency: str, pricing: UsagePricing | None) -> list[Row]:
    """The table rows of one usage (or adjustment) line: the line, then its included quantity
    and tiers when `pricing` is known."""
    unit = meter_of(item.meter).unit if item.meter else ""
    quantity = format_quantity(item.quantity, unit)
    unit_price = "" if item.unit_price is None else format_price(item.unit_price, currency)
    if pricing and pricing.model == "package" and pricing.package_price is not None:
        size = format_quantity(pricing.package_size or Decimal(1), unit)
        unit_price = f"{format_price(pricing.package_price, currency)} per {size}"
    rows = [Row(readable_description(item), quantity, unit_price,
                format_money(item.amount, currency))]
    if pricing is None:
        return rows
    if pricing.included:
        covered = min(item.quantity, pricing.included)
        rows.append(Row(f"Included: up to {format_quantity(pricing.included, unit)}",
                        format_quantity(covered, unit), format_price(Decimal(0), currency),
                        format_price(Decimal(0), currency), detail=True))
    rows += [Row(_tier_label(t, pricing.model, unit, currency), format_quantity(t.quantity, unit),
                 format_price(t.unit_price, currency), format_rounded(t.amount, currency),
                 detail=True) for t in pricing.tiers]
    return rows


def build_document(
    invoice: InvoiceIssued, *, status: str = "pending_payment", paid_date: date | None = None,
    payment_reference: str | None = None, payment_method: str | None = None,
    tenant_name: str | None = None, seller: Seller | None = None,
    pricing: Mapping[str, UsagePricing] | None = None,
) -> InvoiceDocument:
    """The document of `invoice` as it stands (`status`, payment fields). `pricing` maps a
    meter to how its usage line was priced (tiers, included quantity); without it the usage
    lines show no breakdown. Raises `ValueError` for an unknown currency and
    `ZoneInfoNotFoundError` for an unknown time zone."""
    currency, plans = invoice.currency, pricing or {}
    first, last = period_days(invoice.period_start, invoice.period_end, invoice.timezone)
    zone = "" if invoice.timezone == "UTC" else f" ({invoice.timezone})"
    facts = (("Invoice number", invoice.invoice_number),
             ("Bill to", tenant_name or invoice.tenant_id), ("Tenant id", invoice.tenant_id),
             ("Billing email", str(invoice.billing_email)),
             ("Issue date", format_day(invoice.issue_date)),
             ("Due date", format_day(invoice.due_date)),
             ("Period", f"{format_day(first)} - {format_day(last)}{zone}"),
             ("Currency", currency))
    rows: list[Row] = []
    charges = [i for i in invoice.line_items if i.kind not in REDUCTIONS]
    for item in charges:
        if item.kind in ("usage", "adjustment"):
            plan = plans.get(item.meter or "") if item.kind == "usage" else None
            rows += usage_rows(item, currency, plan)
        else:
            price = "" if item.unit_price is None else format_price(item.unit_price, currency)
            rows.append(Row(readable_description(item), format_quantity(item.quantity), price,
                            format_money(item.amount, currency)))
    reductions = tuple((readable_description(i), format_money(i.amount, currency))
                       for i in invoice.line_items if i.kind in REDUCTIONS)
    payment = [("Status", _STATUS_LABELS.get(status, status))]
    payment += [(label, value) for label, value in (
        ("Paid on", format_day(paid_date) if paid_date else None),
        ("Payment reference", payment_reference), ("Payment method", payment_method)) if value]
    note = None if status == "paid" else (
        f"Please pay by {format_day(invoice.due_date)}, quoting {invoice.invoice_number}.")
    return InvoiceDocument(
        number=invoice.invoice_number, seller=seller or Seller(), facts=facts,
        rows=tuple(rows), subtotal=format_money(sum(i.amount for i in charges), currency),
        reductions=reductions, total=format_money(invoice.amount, currency),
        payment=tuple(payment), note=note)
