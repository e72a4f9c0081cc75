"""Tenants and usage of the invoice run benchmark (`bench/invoice_run.py`).

Every tenant has exactly one full billing period (never a stub) ending in February 2026 before
the cycle's clock `AS_OF`: its `effective_from` is one step (1, 3 or 12 months) before that
end on the same billing day (1, 7, 14, 21 or 28, never clipped), and the next period ends
after `AS_OF` in every zone used (the latest end, 28 Feb 00:00 in New York, is 05:00 UTC; the
earliest next end, 1 Mar 00:00 in Australia/Eucla, is 28 Feb 15:15 UTC).

Usage is written as CloudEvents JSON bytes (the collector's wire format) and the generator
keeps its own record of what it wrote (`UsageRecord`: per tenant and meter, the sum in
micro-units and the event count), which the correctness check prices independently.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from contracts import BillingConfigSubmitted, Coupon, PriceCharge, PricePlan
from contracts.config import Actor, BillingSettings, PriceTier

AS_OF = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
ZONES = ("UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Eucla")
#: Currency -> value of one major unit in "bench dollars" (prices and fees are scaled by it).
CURRENCIES = {"USD": Decimal(1), "EUR": Decimal("0.9"), "JPY": Decimal(150),
              "KWD": Decimal("0.3"), "GBP": Decimal("0.8")}
#: Frequency -> (months per period, weight).
FREQUENCIES = {"monthly": (1, 70), "quarterly": (3, 20), "annually": (12, 10)}
BILLING_DAYS = (1, 7, 14, 21, 28)
#: Meter -> aggregation (the platform's standard meters, docs/design.md#usage).
METERS = {"cpu_hours": "sum", "memory_gb_hours": "sum", "bandwidth_gb": "sum",
          "storage_gb": "avg"}
MODELS = ("per_unit", "graduated", "volume", "package")
SERVICE = "svc-main"
MICRO = 10**6
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class TenantSpec:
    """One generated tenant: its configuration and its one due period (UTC instants)."""

    tenant_id: str
    currency: str
    frequency: str
    zone: str
    billing_day: int
    start_date: date
    end_date: date
    flat_minor: int
    charges: tuple[PriceCharge, ...]
    coupon: Coupon | None

    @property
    def start(self) -> datetime:
        """The period's start: 00:00 of `start_date` in the tenant's zone, as UTC."""
        return _midnight(self.start_date, self.zone)

    @property
    def end(self) -> datetime:
        """The period's (exclusive) end: 00:00 of `end_date` in the tenant's zone, as UTC."""
        return _midnight(self.end_date, self.zone)


@dataclass
class UsageRecord:
    """What the generator wrote: (tenant, meter) -> [sum in micro-units, event count]."""

    totals: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    events: int = 0

    def add(self, tenant_id: str, meter: str, micro: int) -> None:
        """Count one event of `micro` millionths of a unit."""
        entry = self.totals.setdefault((tenant_id, meter), [0, 0])
        entry[0] += micro
        entry[1] += 1
        self.events += 1


def _midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _months_before(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, day.day)


def _money(usd: Decimal, currency: str, exponent: int) -> int:
    """`usd` bench dollars in `currency`'s minor units (rounded to a whole minor unit)."""
    return int((usd * CURRENCIES[currency]).scaleb(exponent).to_integral_value())


def _price(usd: Decimal, currency: str) -> Decimal:
    """A unit price: `usd` scaled to `currency`, at most 6 significant digits."""
    value = usd * CURRENCIES[currency]
    return Decimal(f"{value:.6g}")


def _charge(rng: random.Random, meter: str, model: str, currency: str) -> PriceCharge:
    base = _price(rng.choice((Decimal("0.004"), Decimal("0.0125"), Decimal("0.04"),
                              Decimal("0.09"), Decimal("0.35"), Decimal("1.2"))), currency)
    included = Decimal(rng.choice((0, 0, 0, 10, 250)))
    if model == "per_unit":
        return PriceCharge(meter=meter, model=model, unit_price=base,
                           included_quantity=included)
    if model == "package":
        size = Decimal(rng.choice((10, 25, 100)))
        return PriceCharge(meter=meter, model=model, unit_price=base * size, package_size=size,
                           included_quantity=included)
    flat = _price(Decimal(rng.choice((0, 0, 5))), currency)
    tiers = (PriceTier(up_to=Decimal(100), unit_price=base),
             PriceTier(up_to=Decimal(1000), unit_price=base * Decimal("0.8"), flat_price=flat),
             PriceTier(up_to=Decimal(10000), unit_price=base * Decimal("0.6")),
             PriceTier(up_to=None, unit_price=base * Decimal("0.5"), flat_price=flat))
    return PriceCharge(meter=meter, model=model, tiers=tiers, included_quantity=included)


def make_tenants(count: int, seed: int, exponents: dict[str, int],
                 shared_coupons: int) -> list[TenantSpec]:
    """`count` tenants, drawn from `seed`; every price model, zone, currency, frequency and
    billing day occurs once `count` >= 20. A quarter have a coupon; of those, half share one
    of `shared_coupons` codes per currency (a campaign code), the rest have their own."""
    rng = random.Random(seed)
    frequencies = list(FREQUENCIES)
    weights = [FREQUENCIES[f][1] for f in frequencies]
    tenants = []
    for i in range(count):
        currency = list(CURRENCIES)[i % len(CURRENCIES)]
        frequency = frequencies[i % 3] if i < 3 else rng.choices(frequencies, weights)[0]
        day = BILLING_DAYS[(i // 7) % len(BILLING_DAYS)]
        end = date(2026, 2, day)
        meters = list(METERS) if rng.random() < 0.8 else list(METERS)[:3]
        charges = tuple(_charge(rng, m, MODELS[(i + k) % len(MODELS)], currency)
                        for k, m in enumerate(meters))
        flat = _money(Decimal(rng.choice((0, 19, 49, 99, 499))), currency, exponents[currency])
        coupon = None
        if rng.random() < 0.25:
            duration = rng.choice(("once", "repeating", "forever"))
            shared = shared_coupons and rng.random() < 0.5
            code = (f"Promo{currency}{rng.randrange(shared_coupons)}Zq" if shared
                    else f"Bench{i:07d}Xq")
            coupon = Coupon(code=code, duration=duration,
                            amount_off=_money(Decimal(rng.choice((5, 20, 150))), currency,
                                              exponents[currency]),
                            duration_in_periods=3 if duration == "repeating" else None)
        tenants.append(TenantSpec(
            tenant_id=f"bench-{i:06d}", currency=currency, frequency=frequency,
            zone=ZONES[(i // 5) % len(ZONES)], billing_day=day,
            start_date=_months_before(end, FREQUENCIES[frequency][0]), end_date=end,
            flat_minor=flat, charges=charges, coupon=coupon,
        ))
    return tenants


def config_command(spec: TenantSpec) -> BillingConfigSubmitted:
    """The operator's configuration command for `spec` (submitted the day before its period
    starts), as `billing config apply` would publish it."""
    return BillingConfigSubmitted(
        event_id=f"bench-config:{spec.tenant_id}", occurred_at=spec.start - timedelta(days=1),
        tenant_id=spec.tenant_id, tenant_name=f"Bench tenant {spec.tenant_id}",
        actor=Actor(user_id="bench-operator", role="super"),
        settings=BillingSettings(
            flat_rate_amount=spec.flat_minor, currency=spec.currency,
            billing_frequency=spec.frequency,
            billing_email=f"billing@{spec.tenant_id}.example.com", auto_generate_invoices=True,
            billing_day_of_month=spec.billing_day, payment_due_days=30,
            email_notifications=False),
        timezone=spec.zone, effective_from=spec.start_date,
        price_plan=PricePlan(charges=spec.charges), coupon=spec.coupon,
    )


def _hours(spec: TenantSpec, count: int) -> list[datetime]:
    """`count` instants spread evenly over the period, each 7 minutes into its own hour
    (from the period's start), so each event has its own bucket and lies inside the period."""
    span = int((spec.end - spec.start) / HOUR)
    count = min(count, span)
    return [spec.start + (k * span // count) * HOUR + timedelta(minutes=7)
            for k in range(count)]


def usage_batches(tenants: list[TenantSpec], hours: int, seed: int, record: UsageRecord,
                  batch_size: int) -> Iterator[list[bytes]]:
    """Usage events (JSON bytes) in batches of about `batch_size`, whole tenants per batch:
    for each tenant and meter, `hours` events spread over its period. Sum meters get a
    per-tenant total drawn log-uniformly in [0.5, 50,000] units split over the events;
    `storage_gb` (a gauge, averaged) is drawn around a per-tenant level. Quantities have six
    decimals and are recorded in `record`."""
    rng = random.Random(seed + 1)
    batch: list[bytes] = []
    n = 0
    for spec in tenants:
        instants = _hours(spec, hours)
        for meter, aggregation in METERS.items():
            level = int(10 ** rng.uniform(-0.3, 4.7) * MICRO)
            mean = level if aggregation == "avg" else max(1, level // len(instants))
            for at in instants:
                micro = rng.randint(mean // 2, mean * 3 // 2)
                record.add(spec.tenant_id, meter, micro)
                n += 1
                batch.append(
                    b'{"specversion":"1.0","id":"u%d","source":"bench-invoice",'
                    b'"type":"billing.usage","subject":"%s","time":"%s","data":'
                    b'{"meter":"%s","quantity":"%d.%06d","service":"%s"}}' % (
                        n, spec.tenant_id.encode(), at.isoformat().encode(), meter.encode(),
                        micro // MICRO, micro % MICRO, SERVICE.encode()))
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def buckets_planned(tenants: list[TenantSpec], hours: int) -> int:
    """How many usage buckets (= events) `usage_batches` writes."""
    return sum(len(_hours(t, hours)) for t in tenants) * len(METERS)


def mix(tenants: list[TenantSpec]) -> dict[str, dict[str, int]]:
    """How many tenants of each currency, frequency, zone and price model (a tenant counts
    once per model it uses), with a flat fee, and with a coupon (own or shared code)."""
    def count(values: list[str]) -> dict[str, int]:
        return dict(sorted(Counter(values).items()))

    return {
        "currency": count([t.currency for t in tenants]),
        "frequency": count([t.frequency for t in tenants]),
        "zone": count([t.zone for t in tenants]),
        "model": count([m for t in tenants for m in {c.model for c in t.charges}]),
        "extras": count(["flat_fee"] * sum(1 for t in tenants if t.flat_minor)
                        + [("shared_coupon" if t.coupon.code.startswith("Promo")
                            else "own_coupon") for t in tenants if t.coupon]),
    }
