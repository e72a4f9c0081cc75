"""What the tenant pages show, computed from the API's own response models (pure functions,
no I/O; docs/portal.md, "Tenant pages"). Texts are formatted for the browser's locale."""

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.api.models_reads import InvoiceDetail, Money, UsageView
from services.api.portal import formatting as fmt
from services.api.portal.charts import Bar, Slice
from services.common import invoice_document
from services.common.meters import meter_of

#: The Usage page's four cards: (meter, data-testid, label, how the quantity is described).
USAGE_CARDS: tuple[tuple[str, str, str, str], ...] = (
    ("cpu_hours", "card-cpu", "CPU hours", "vCPU-hours"),
    ("memory_gb_hours", "card-memory", "Memory", "GB-hours"),
    ("storage_gb", "card-storage", "Storage", "GB average"),
    ("bandwidth_gb", "card-bandwidth", "Bandwidth", "GB"),
)
#: Status labels as the badges show them (`macros.badge`).
STATUS_LABELS = {"paid": "Paid", "pending_payment": "Unpaid", "failed": "Payment failed",
                 "overdue": "Overdue", "draft": "Draft"}


def amounts(values: list[Money], currency: str, locale: str) -> str:
    """Amounts per currency joined with " + " (a tenant that changed currency owes in both);
    zero in `currency` when there is none."""
    if not values:
        return fmt.money(0, currency, locale)
    return " + ".join(fmt.money(v.amount, v.currency, locale) for v in values)


def period_days(start: datetime, end: datetime, zone: str, locale: str) -> tuple[str, str]:
    """An interval [start, end) as its first and LAST day in IANA zone `zone` (the exclusive
    end's previous instant): a period ending at local midnight on 1 Feb ends on 31 Jan."""
    first, last = invoice_document.period_days(start, end, zone)
    return fmt.date_in(first, None, locale), fmt.date_in(last, None, locale)


@dataclass(frozen=True)
class TimelineRow:
    """One timeline entry: what happened and when (in the tenant's zone)."""

    label: str
    when: str
    iso: str


def _event_label(event: str, status: str, refund: Money | None, locale: str) -> str:
    if event == "issued":
        return "Issued"
    if event == "refunded" and refund is not None:
        return f"Refunded {fmt.money(abs(refund.amount), refund.currency, locale)}"
    return {"paid": "Paid", "overdue": "Became overdue", "failed": "Payment failed",
            "pending_payment": "Awaiting payment"}.get(status, f"Status: {status}")


def timeline(detail: InvoiceDetail, locale: str) -> list[TimelineRow]:
    """Issued, each status change and refund (date and time in the tenant's zone) and the due
    date, in date order (events of one day keep the order the invoice went through them; the
    due date comes after them)."""
    zone = ZoneInfo(detail.timezone)
    keyed: list[tuple[date, int, TimelineRow]] = []
    for position, e in enumerate(detail.timeline):
        at: datetime = e.at.astimezone(zone)
        keyed.append((at.date(), position, TimelineRow(
            _event_label(e.event, e.status, e.amount, locale),
            fmt.datetime_in(e.at, detail.timezone, locale), at.isoformat())))
    keyed.append((detail.due_date, len(keyed), TimelineRow(
        "Due", fmt.date_in(detail.due_date, None, locale), detail.due_date.isoformat())))
    return [row for _, _, row in sorted(keyed, key=lambda k: (k[0], k[1]))]


@dataclass(frozen=True)
class LineRow:
    """One line item as shown: readable description, quantity with unit, unit price, amount."""

    kind: str
    description: str
    quantity: str
    unit_price: str
    amount: str


def line_rows(detail: InvoiceDetail, locale: str) -> list[LineRow]:
    """The invoice's lines; a meter key in a description becomes its readable name, usage
    quantities keep every digit and carry their unit, unit prices read like amounts."""
    currency = detail.total.currency
    rows = []
    for li in detail.line_items:
        text = li.description
        unit = None
        if li.meter:
            meter = meter_of(li.meter)
            text = text.replace(li.meter, meter.name)
            unit = li.unit or meter.unit
        shows_quantity = li.meter is not None or li.unit_price is not None
        rows.append(LineRow(
            kind=li.kind, description=text,
            quantity=fmt.quantity(li.quantity, unit, locale) if shows_quantity else "",
            unit_price=("" if li.unit_price is None
                        else fmt.unit_price(li.unit_price, currency, locale)),
            amount=fmt.money(li.amount.amount, currency, locale)))
    return rows


@dataclass(frozen=True)
class UsageCard:
    """A Usage page card: its data-testid, label, quantity text and estimated cost text."""

    testid: str
    label: str
    quantity: str
    cost: str
    priced: bool
    cost_minor: int


def usage_cards(view: UsageView, locale: str) -> list[UsageCard]:
    """The four standard meters' quantities and estimated costs (zero without usage)."""
    by_meter = {m.meter: m for m in view.meters}
    currency = view.estimated_total.currency
    cards = []
    for meter, testid, label, unit in USAGE_CARDS:
        found = by_meter.get(meter)
        cost = found.estimated_cost.amount if found else 0
        cards.append(UsageCard(
            testid, label, fmt.quantity(found.quantity if found else 0, unit, locale),
            fmt.money(cost, currency, locale), bool(found and found.priced), cost))
    return cards


def cost_bars(cards: list[UsageCard]) -> list[Bar]:
    """The bar chart's bars: each card's estimated cost."""
    return [Bar(c.label, float(c.cost_minor), c.cost) for c in cards]


@dataclass(frozen=True)
class ServiceRow:
    """A row of "Usage by service"."""

    service: str
    meter: str
    quantity: str
    cost: str


def _split(cost: int, shares: list[Decimal]) -> list[int]:
    """`cost` split by `shares` in whole minor units that add up to `cost` exactly (largest
    remainders get the leftover units)."""
    total = sum(shares)
    if total == 0:
        return [cost] + [0] * (len(shares) - 1)
    exact = [Decimal(cost) * s / total for s in shares]
    parts = [int(e) for e in exact]  # toward zero: the rest is handed out below
    rest = cost - sum(parts)
    step = 1 if rest > 0 else -1
    order = sorted(range(len(shares)), key=lambda i: abs(exact[i] - parts[i]), reverse=True)
    for i in order[:abs(rest)]:
        parts[i] += step
    return parts


def service_rows(view: UsageView, locale: str) -> list[ServiceRow]:
    """Each meter's usage per service with its share of the meter's estimated cost (split by
    quantity, so the rows add up to the estimated total); a priced meter without usage but
    with a cost shows one "All services" row."""
    currency = view.estimated_total.currency
    rows = []
    for m in view.meters:
        meter = meter_of(m.meter)
        services = sorted(m.services, key=lambda s: s.service)
        if not services:
            if m.estimated_cost.amount:
                rows.append(ServiceRow("All services", meter.name,
                                       fmt.quantity(m.quantity, m.unit, locale),
                                       fmt.money(m.estimated_cost.amount, currency, locale)))
            continue
        costs = _split(m.estimated_cost.amount, [Decimal(s.quantity) for s in services])
        for s, cost in zip(services, costs, strict=True):
            rows.append(ServiceRow(s.service, meter.name,
                                   fmt.quantity(s.quantity, m.unit, locale),
                                   fmt.money(cost, currency, locale)))
    return rows


def status_slices(counts: Mapping[str, int]) -> list[Slice]:
    """Invoice counts for the pie from the counts per status: Paid, Unpaid (awaiting payment
    or payment failed) and Overdue."""
    counts = Counter(counts)
    unpaid = counts["pending_payment"] + counts["failed"]
    return [Slice("Paid", counts["paid"], str(counts["paid"]), "paid"),
            Slice("Unpaid", unpaid, str(unpaid), "pending_payment"),
            Slice("Overdue", counts["overdue"], str(counts["overdue"]), "overdue")]
