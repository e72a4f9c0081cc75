"""Seed data the read views' and read endpoints' tests share (no tests here): three tenants
configured through the invoicer's handler, usage recorded through the collector's api, the
invoices the cycle issues on 2013-08-01, one payment and one refused submission."""

from dataclasses import dataclass
from typing import Any

from contracts import PaymentSucceeded
from services.common.errors import Forbidden
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.handlers import apply_config, apply_payment
from services.invoicer.schedule import run_cycle
from tests.integration.test_invoicer_support import collect_usage, config, utc

#: acme's price plan: cpu per unit, memory graduated with an included quantity.
ACME_PLAN = {"charges": [
    {"meter": "cpu_hours", "model": "per_unit", "unit_price": "0.50"},
    {"meter": "memory_gb_hours", "model": "graduated", "included_quantity": "5",
     "tiers": [{"up_to": "10", "unit_price": "0.10"}, {"unit_price": "0.05"}]},
]}


@dataclass(frozen=True)
class Seeded:
    """What `seed` wrote: invoice numbers by (tenant, issue date), the refused submission id."""

    numbers: dict[tuple[str, str], str]
    refused_event_id: str
    applied_event_id: str


async def seed(store: InvoicerStore) -> Seeded:
    """acme (USD, UTC, usage in June and July 2013), globex (EUR, Europe/Berlin, no usage),
    umbrella (USD, no usage); the cycle at 2013-08-01; acme's June invoice paid; a
    submission for acme by a viewer, refused."""
    await store.ensure_indexes()
    acme = config("acme", price_plan=ACME_PLAN)
    await apply_config(store, acme)
    await apply_config(store, config("globex", timezone="Europe/Berlin",
                                     settings={"currency": "EUR", "flat_rate_amount": 2000}))
    await apply_config(store, config("umbrella"))
    refused = config("acme", actor={"user_id": "someone", "role": "viewer"})
    try:
        await apply_config(store, refused)
    except Forbidden:
        pass
    for service, hour, cpu, memory in (("web", utc(2013, 6, 3, 10), "10", "4.5"),
                                       ("db", utc(2013, 6, 20, 23), "2.25", "9"),
                                       ("web", utc(2013, 7, 31, 23), "1", "0")):
        await collect_usage(store.db, "acme", "cpu_hours", service, hour, cpu)
        await collect_usage(store.db, "acme", "memory_gb_hours", service, hour, memory)
    await run_cycle(store, utc(2013, 8, 1))
    docs = await store.find_invoices()
    numbers = {(d["tenant_id"], d["issue_date"]): d["invoice_number"] for d in docs}
    june: dict[str, Any] = next(d for d in docs if d["tenant_id"] == "acme"
                                and d["issue_date"] == "2013-07-01")
    await apply_payment(store, PaymentSucceeded(
        event_id="pay-1", invoice_id=june["_id"], invoice_number=june["invoice_number"],
        tenant_id="acme", amount=june["amount"], currency="USD", payment_reference="pi_1",
        payment_method="card visa 4242", paid_at=utc(2013, 7, 2, 3)))
    return Seeded(numbers, refused.event_id, acme.event_id)
