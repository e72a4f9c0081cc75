"""Independent check of the invoices the benchmark's cycle issued (`bench/invoice_run.py`).

Nothing here uses the invoicer's code: the price models are implemented again from their
contract (`contracts.config.PriceCharge`: included quantity taken off first; `per_unit`,
`graduated` each tier pricing its own slice plus its flat price, `volume` the tier the whole
quantity reaches pricing all of it plus its flat price, `package` per started block), each
line computed exactly and rounded once, half-up, to the currency's ISO 4217 minor unit
(docs/invoicing.md, "Exact arithmetic"; exponents from the `iso4217` package), usage totals
come from the generator's own record (`invoice_data.UsageRecord`), `avg` meters are the
exact sum over the event count rounded half-even to 34 digits (docs/usage.md, "Exact sums"),
and a coupon on a tenant's first invoice takes at most the running total
(docs/invoicing.md, "Coupon redemptions").
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, Inexact
from typing import Any

from iso4217 import Currency

from bench.invoice_data import METERS, TenantSpec, UsageRecord
from contracts import PriceCharge

#: Exact products and sums: any rounding raises.
EXACT = Context(prec=1000, traps=[Inexact])
AVERAGE = Context(prec=34, rounding=ROUND_HALF_EVEN)
NUMBER = re.compile(r"^INV-(\d{4})-(\d{4,})$")


@dataclass(frozen=True)
class Expected:
    """One invoice as the benchmark computes it: lines (kind, meter, quantity, amount) in
    order, subtotal (flat fee and usage), discount (coupon, positive) and total, minor units."""

    currency: str
    lines: tuple[tuple[str, str | None, Decimal, int], ...]
    subtotal: int
    discount: int
    total: int


def exponent(currency: str) -> int:
    """ISO 4217 minor-unit digits of `currency` (JPY 0, USD 2, KWD 3)."""
    return int(Currency(currency).exponent or 0)


def round_half_up(major: Decimal, currency: str) -> int:
    """`major` (exact) in minor units, rounded once, half-up."""
    return int(major.scaleb(exponent(currency)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def exact_price(charge: PriceCharge, quantity: Decimal) -> Decimal:
    """What `charge` asks for `quantity`, exact, in major units."""
    billable = max(Decimal(0), EXACT.subtract(quantity, charge.included_quantity))
    if charge.model == "per_unit":
        assert charge.unit_price is not None
        return EXACT.multiply(billable, charge.unit_price)
    if charge.model == "package":
        assert charge.unit_price is not None and charge.package_size
        blocks = int(billable // charge.package_size)
        if blocks * charge.package_size < billable:
            blocks += 1
        return EXACT.multiply(Decimal(blocks), charge.unit_price)
    if billable == 0:
        return Decimal(0)
    total, lower = Decimal(0), Decimal(0)
    for tier in charge.tiers:
        top = tier.up_to
        if charge.model == "volume":
            if top is None or billable <= top:
                return EXACT.add(EXACT.multiply(billable, tier.unit_price), tier.flat_price)
            continue
        in_tier = EXACT.subtract(billable if top is None else min(billable, top), lower)
        if in_tier > 0:
            total = EXACT.add(total, EXACT.add(EXACT.multiply(in_tier, tier.unit_price),
                                               tier.flat_price))
        if top is None or billable <= top:
            break
        lower = top
    return total


def meter_total(record: UsageRecord, tenant_id: str, meter: str) -> Decimal:
    """The meter's total over the period from what the generator wrote (0 without events)."""
    micro, count = record.totals.get((tenant_id, meter), (0, 0))
    total = Decimal(micro).scaleb(-6)
    if METERS[meter] == "avg":
        return AVERAGE.divide(total, Decimal(count)) if count else Decimal(0)
    return total


def expected_invoice(spec: TenantSpec, record: UsageRecord) -> Expected:
    """The first invoice of `spec`'s tenant for its one full period."""
    lines: list[tuple[str, str | None, Decimal, int]] = [
        ("flat_fee", None, Decimal(1), spec.flat_minor)]
    for charge in spec.charges:
        quantity = meter_total(record, spec.tenant_id, charge.meter)
        lines.append(("usage", charge.meter, quantity,
                      round_half_up(exact_price(charge, quantity), spec.currency)))
    subtotal = sum(line[3] for line in lines)
    discount = min(spec.coupon.amount_off, subtotal) if spec.coupon else 0
    if discount > 0:
        lines.append(("coupon", None, Decimal(1), -discount))
    return Expected(spec.currency, tuple(lines), subtotal, discount, subtotal - discount)


def compare(spec: TenantSpec, doc: dict[str, Any] | None, record: UsageRecord) -> list[str]:
    """Differences between the stored invoice `doc` and the independent computation."""
    if doc is None:
        return [f"{spec.tenant_id}: no invoice"]
    want, who = expected_invoice(spec, record), spec.tenant_id
    problems = []
    if doc["currency"] != want.currency:
        problems.append(f"{who}: currency {doc['currency']} != {want.currency}")
    if (doc["period_start"], doc["period_end"]) != (spec.start, spec.end):
        problems.append(f"{who}: period {doc['period_start']}..{doc['period_end']} != "
                        f"{spec.start}..{spec.end}")
    got = [(li["kind"], li.get("meter"), Decimal(str(li["quantity"])), int(li["amount"]))
           for li in doc["line_items"]]
    if len(got) != len(want.lines):
        problems.append(f"{who}: {len(got)} lines != {len(want.lines)}: {got} vs {want.lines}")
    for g, w in zip(got, want.lines, strict=False):
        if g[:2] != w[:2] or g[3] != w[3] or (g[0] == "usage" and g[2] != w[2]):
            problems.append(f"{who}: line {g} != expected {w}")
    subtotal = sum(g[3] for g in got if g[0] in ("flat_fee", "usage"))
    discount = -sum(g[3] for g in got if g[0] == "coupon")
    for name, value, expected in (("subtotal", subtotal, want.subtotal),
                                  ("discount", discount, want.discount),
                                  ("total", int(doc["amount"]), want.total)):
        if value != expected:
            problems.append(f"{who}: {name} {value} != {expected}")
    return problems


def check_numbers(rows: list[dict[str, Any]], tenants: list[TenantSpec]) -> list[str]:
    """Invoice numbers gapless 1..n per year, and exactly one invoice per tenant.
    `rows`: every stored invoice's `tenant_id` and `invoice_number`."""
    problems: list[str] = []
    by_year: dict[str, list[int]] = {}
    for row in rows:
        match = NUMBER.match(row["invoice_number"])
        if match is None:
            problems.append(f"malformed invoice number {row['invoice_number']!r}")
            continue
        by_year.setdefault(match[1], []).append(int(match[2]))
    for year, seqs in sorted(by_year.items()):
        if sorted(seqs) != list(range(1, len(seqs) + 1)):
            missing = sorted(set(range(1, len(seqs) + 1)) - set(seqs))[:10]
            dupes = [s for s, c in Counter(seqs).items() if c > 1][:10]
            problems.append(f"{year}: numbers not gapless 1..{len(seqs)} (missing {missing}, "
                            f"duplicated {dupes})")
    counts = Counter(row["tenant_id"] for row in rows)
    wrong = [(t.tenant_id, counts.get(t.tenant_id, 0)) for t in tenants
             if counts.get(t.tenant_id, 0) != 1]
    if wrong:
        problems.append(f"{len(wrong)} tenants without exactly one invoice, e.g. {wrong[:5]}")
    extra = set(counts) - {t.tenant_id for t in tenants}
    if extra:
        problems.append(f"invoices of unknown tenants: {sorted(extra)[:5]}")
    return problems
