"""Late usage: usage that changed after its period was invoiced becomes an adjustment on the
tenant's next invoice, exactly once (docs/invoicing.md, "Late usage").

What each invoice billed is kept in `invoicer_billed_usage`, one record per tenant, period and
priced meter (`_id` "{tenant}|{period start}|{meter}"):

    quantity      Decimal   the meter's total over the period, as last billed
    amount        int       the FULL priced amount of that quantity (minor units), whatever part
                            of a reduction an invoice could take (the rest is a credit balance)
    charge        the price charge it was priced with
    currency      the invoice's currency (ISO 4217)
    usage_marker  int       the tenant's usage sequence read BEFORE that usage was read
    rev           int       0 when billed, +1 with every adjustment (checked in the update)
    priced_at, adjusted_by  when last priced, the invoice ids that adjusted it

A period is re-read only when the collector reports a change after the records' marker
(`UsageSource.changed_since`); no clock of any host is compared. Everything here runs inside the
issuing transaction: billed records are read with its session and updated only if their `rev`
is unchanged, so two issuances of one tenant cannot both bill the same late usage.
Usage is read only through the `UsageSource` (`adapters/usage.py`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation, localcontext
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from contracts import PriceCharge
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.adapters.usage import UsageSource, UsageTotal
from services.invoicer.pricing import (
    EXACT,
    ZERO,
    Adjustment,
    charge_exact,
    check_int64,
    round_minor,
)

Doc = dict[str, Any]
#: Decimal128's precision (IEEE 754 decimal128): what a stored quantity can hold.
DECIMAL128 = Context(prec=34, rounding=ROUND_HALF_EVEN, Emax=6144, Emin=-6143)
#: The same, refusing to round.
DECIMAL128_EXACT = Context(prec=34, rounding=ROUND_HALF_EVEN, Emax=6144, Emin=-6143,
                           traps=[Inexact, InvalidOperation])


class BilledMoved(RuntimeError):
    """A billed-usage record changed between reading and writing it: the transaction aborts
    and the issue is priced again."""


@dataclass(frozen=True)
class Superseded:
    """A billed record as read in the transaction, and what it becomes: the period's new total
    `quantity` and its full `amount` (minor units); `adjusted` is False for a record only
    brought to the new marker."""

    doc: Doc
    quantity: Decimal
    amount: int
    adjusted: bool = True


async def usage_by_meter(
    usage: UsageSource, tenant_id: str, start: datetime, end: datetime
) -> dict[str, Decimal]:
    """Each meter's total over [start, end), summed over the tenant's services exactly:
    `meter_totals` of the usage source's totals."""
    return meter_totals(await usage.totals(tenant_id, start, end))


def meter_totals(found: Sequence[UsageTotal]) -> dict[str, Decimal]:
    """Each meter's total of per-service totals `found`, summed exactly (the `EXACT`
    context), as stored with the invoice: a Decimal128 (34 significant digits).

    A total of exact aggregations that needs more than 34 digits raises `Inexact` (a billing
    error), never rounds. A total of `avg` meters (each service's average is already a
    quotient rounded by the read side) is rounded once, half-even, to 34 digits, so what is
    priced is what is stored and a later re-read gives the same total (docs/invoicing.md,
    "Exact arithmetic").
    """
    totals: dict[str, Decimal] = {}
    with localcontext(EXACT):
        for t in found:
            totals[t.meter] = totals.get(t.meter, ZERO) + t.quantity
    averaged = {t.meter for t in found if t.aggregation == "avg"}
    return {m: DECIMAL128.create_decimal(q) if m in averaged else DECIMAL128_EXACT.plus(q)
            for m, q in totals.items()}


async def late_usage(
    store: InvoicerStore, session: AsyncClientSession, tenant_id: str, before: datetime,
    currency: str,
) -> tuple[list[Adjustment], list[Superseded]]:
    """Adjustments for usage that changed after earlier periods (ended at or before `before`)
    were invoiced, with the billed records they supersede. Billed records are read in
    `session`; a period is re-read only if its usage changed after its records' marker (or a
    record has no marker). Raises decimal errors or `AmountOutOfRange` like pricing."""
    # only periods billed in `currency`: the others wait for an invoice in theirs
    # (docs/billing-periods.md, "Currency changes")
    billed = await store.billed_before(tenant_id, before, currency, session)
    adjustments: list[Adjustment] = []
    touched: list[Superseded] = []
    markers = [d.get("usage_marker") for d in billed]
    if not billed or (None not in markers and not await store.usage.changed_since(
        tenant_id, billed[0]["period_start"], before,
        min(int(m) for m in markers if m is not None),
    )):
        return adjustments, touched  # one query when nothing billed changed (the usual case)
    by_period: dict[datetime, list[Doc]] = {}
    for doc in billed:
        by_period.setdefault(doc["period_start"], []).append(doc)
    for start, docs in sorted(by_period.items()):
        end = docs[0]["period_end"]
        markers = [d.get("usage_marker") for d in docs]
        if None not in markers and not await store.usage.changed_since(
            tenant_id, start, end, min(int(m) for m in markers if m is not None)
        ):
            continue
        usage = await usage_by_meter(store.usage, tenant_id, start, end)
        changed: list[Superseded] = []
        for doc in docs:
            charge = PriceCharge.model_validate(doc["charge"])
            quantity = usage.get(doc["meter"], ZERO)
            amount = check_int64(round_minor(charge_exact(charge, quantity), currency),
                                 f"{doc['meter']} for {doc['period_label']}")
            if quantity == doc["quantity"] and amount == doc["amount"]:
                continue
            with localcontext(EXACT):
                quantity_delta = quantity - Decimal(doc["quantity"])
            adjustments.append(Adjustment(
                meter=doc["meter"], period_label=doc["period_label"],
                quantity_delta=quantity_delta, amount_delta=amount - int(doc["amount"]),
                unit_price=charge.unit_price if charge.model == "per_unit" else None,
            ))
            changed.append(Superseded(doc, quantity, amount))
        if changed:  # the period's other records move to the new marker too
            ids = {c.doc["_id"] for c in changed}
            touched += changed + [Superseded(d, Decimal(d["quantity"]), int(d["amount"]), False)
                                  for d in docs if d["_id"] not in ids]
    return adjustments, touched


async def supersede(
    store: InvoicerStore, session: AsyncClientSession, superseded: list[Superseded],
    inv_id: str, priced_at: datetime, marker: int,
) -> None:
    """Write the new quantity, full amount and `marker` of each superseded record in
    `session`, guarded by the `rev` read in the same transaction; raises `BilledMoved` (the
    transaction aborts) when a record changed meanwhile."""
    for s in superseded:
        rev = s.doc.get("rev")
        guard = {"_id": s.doc["_id"], "rev": rev if rev is not None else {"$exists": False}}
        update: Doc = {"$set": {"quantity": s.quantity, "amount": s.amount,
                                "priced_at": priced_at, "usage_marker": marker,
                                "rev": (rev or 0) + 1}}
        if s.adjusted:
            update["$push"] = {"adjusted_by": inv_id}
        if not await store.update_billed(guard, update, session):
            raise BilledMoved(f"billed usage {s.doc['_id']} changed meanwhile")
