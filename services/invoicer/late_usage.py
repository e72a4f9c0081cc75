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

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation, localcontext
from functools import partial
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


#: A billed period: (start, end, the smallest usage marker of its records; None when one of
#: them has no marker).
BilledSpan = tuple[datetime, datetime, int | None]
#: One tenant's `UsageSource.changed_since`: (start, end, marker) -> whether usage in an hour
#: overlapping [start, end) changed after `marker`.
ChangedSince = Callable[[datetime, datetime, int], Awaitable[bool]]


def billed_spans(billed: Iterable[Doc]) -> list[BilledSpan]:
    """The billed periods of billed-usage records `billed` (schema above), by start: each
    with the first record's end and the smallest marker of its records (None if any lacks
    one)."""
    spans: dict[datetime, BilledSpan] = {}
    for doc in billed:
        start, marker = doc["period_start"], doc.get("usage_marker")
        _, end, smallest = spans.get(start, (start, doc["period_end"], marker))
        merged = None if marker is None or smallest is None else min(int(marker), smallest)
        spans[start] = (start, end, merged)
    return [spans[start] for start in sorted(spans)]


async def changed_periods(
    spans: Sequence[BilledSpan], before: datetime, changed_since: ChangedSince, *,
    current: int | None = None, first: bool = False,
) -> list[datetime]:
    """The starts of the billed periods `spans` (by start, from `billed_spans`) whose usage
    changed after their own marker; a period without a marker always counts as changed.

    First one question over all of them, from the first start to `before` with the smallest
    marker: when it says "no change" (the usual case) that is the only query. Only when it
    says "changed" is each period asked on its own, so usage of the last billed period,
    written after an older period's marker, is not taken for late usage. `current` (the
    tenant's usage marker read before, if known) spares the questions about markers not below
    it: nothing changed after them. `first` stops at the first changed period (for a yes or
    no answer). Raises what `changed_since` raises."""
    if not spans:
        return []
    markers = [marker for _, _, marker in spans]
    if None not in markers:
        smallest = min(m for m in markers if m is not None)
        if (current is not None and current <= smallest) or not await changed_since(
                spans[0][0], before, smallest):
            return []
    changed: list[datetime] = []
    for start, end, marker in spans:
        if marker is None or ((current is None or current > marker)
                              and await changed_since(start, end, marker)):
            changed.append(start)
            if first:
                break
    return changed


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
    changed_since = partial(store.usage.changed_since, tenant_id)
    changed_starts = set(await changed_periods(billed_spans(billed), before, changed_since))
    by_period: dict[datetime, list[Doc]] = {}
    for doc in billed:
        if doc["period_start"] in changed_starts:
            by_period.setdefault(doc["period_start"], []).append(doc)
    for start, docs in sorted(by_period.items()):
        end = docs[0]["period_end"]
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
