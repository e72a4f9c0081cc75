"""The issuing transaction in MongoDB: number, invoice, billed records, ledger and outbox in one
commit, retried while the tenant's ledger or billed records move (docs/invoicing.md, "Two
issuances at once").

The caller's `read(session)` reads everything the invoice depends on inside the transaction
(in its snapshot) and prices it; `issue` then takes the next number of the year's counter,
builds the invoice (`records.build_invoice`) and writes, each write guarded by what was read:

    invoicer_invoices       insert (unique `_id` and `invoice_number`)
    invoicer_billed_usage   one record per priced meter; superseded records only if their
                            `rev` is unchanged (else `BilledMoved`)
    invoicer_coupon_redemptions  the code's count, only if still as read (else `LedgerMoved`)
    invoicer_tenants        the ledger, only if `ledger_rev` is unchanged (else `LedgerMoved`)
    invoicer_outbox         the `InvoiceIssued` event
    invoicer_billing_errors the period's open billing error, resolved

An aborted attempt writes nothing and consumes no number.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from contracts import TOPIC_INVOICE
from services.common.outbox import add_to_outbox
from services.invoicer.adapters.batch_reads import coupon_codes
from services.invoicer.adapters.billing_errors import IssueContention, resolve_billing_error
from services.invoicer.adapters.ledger import ensure_coupon_count, take_redemption
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.domain import invoice_counter, invoice_number
from services.invoicer.late_usage import BilledMoved, supersede
from services.invoicer.ledger import LedgerMoved
from services.invoicer.names import OUTBOX
from services.invoicer.records import IssueDraft, billed_records, build_invoice, issued_event

log = logging.getLogger(__name__)
#: Attempts of one issue whose transaction found its ledger or billed records moved.
ISSUE_ATTEMPTS = 10
Read = Callable[[AsyncClientSession], Awaitable[IssueDraft | None]]
Doc = dict[str, Any]


async def issue(store: InvoicerStore, inv_id: str, tenant_id: str, year: int,
                read: Read) -> str | None:
    """Issue invoice `inv_id` of `tenant_id`, numbered in `year`, from what `read` prices in
    the transaction (None from `read`: nothing to issue). Returns the new number, or None when
    the invoice exists (issued by this or another process) or `read` returned None.

    Raises what `read` raises (nothing is written), `LookupError` without a configuration,
    `IssueContention` when the ledger kept moving for `ISSUE_ATTEMPTS` attempts; a duplicate
    key other than this invoice's propagates."""
    if await store.invoices.find_one({"_id": inv_id}, projection={"_id": 1}):
        return None

    async def txn(session: AsyncClientSession) -> str | None:
        if await store.invoices.find_one({"_id": inv_id}, projection={"_id": 1}, session=session):
            return None
        draft = await read(session)
        if draft is None:
            return None
        number = invoice_number(year, await take_numbers(store, session, year))
        await _write(store, session, draft, number)
        return number

    for _ in range(ISSUE_ATTEMPTS):
        await _prepare(store, tenant_id, year)
        try:
            number = await store.transaction(txn)
            break
        except DuplicateKeyError:
            if await store.invoices.find_one({"_id": inv_id}, projection={"_id": 1}):
                return None  # another process issued it first; its transaction kept the number
            raise  # some other duplicate: never mistaken for "already issued"
        except (LedgerMoved, BilledMoved):
            continue  # another invoice of this tenant committed meanwhile: price again
    else:
        raise IssueContention(f"could not issue {inv_id}: the tenant ledger kept changing")
    if number is not None:
        log.info("issued %s", number, extra={"tenant_id": tenant_id, "invoice_number": number})
    return number


async def _write(
    store: InvoicerStore, session: AsyncClientSession, issue: IssueDraft, number: str
) -> None:
    """Every write of one issue, in `session`, each guarded by what the attempt read."""
    doc = build_invoice(issue, number)
    await store.invoices.insert_one(doc, session=session)
    for record in billed_records(issue):
        await store.billed.insert_one(record, session=session)
    await supersede(store, session, issue.superseded, issue.invoice_id, issue.priced_at,
                    issue.marker)
    coupon, draft = issue.config.coupon, issue.draft
    if draft.coupon_applied and coupon is not None and issue.coupon_uses == 0:
        await take_redemption(store.db, coupon.code, [issue.tenant_id],
                              issue.code_redemptions, session)
    guard, update = ledger_update(issue, number)
    result = await store.tenants.update_one(guard, update, session=session)
    if result.modified_count != 1:
        raise LedgerMoved(issue.tenant_id)  # aborts the transaction: nothing is written
    await add_to_outbox(store.db, OUTBOX,
                        [(issued_event(doc), TOPIC_INVOICE, issue.tenant_id)], session)
    await resolve_billing_error(store.db, issue.invoice_id, number, session)


async def take_numbers(store: InvoicerStore, session: AsyncClientSession, year: int,
                       count: int = 1) -> int:
    """Take the next `count` sequence numbers of `year`'s invoices in `session` (one `$inc`
    of its counter, created before the transaction by `store.ensure_counter`); returns the
    first. A committed transaction keeps them, an aborted one gives them back: the numbers
    stay gapless."""
    counter = await store.counters.find_one_and_update(
        {"_id": invoice_counter(year)}, {"$inc": {"seq": count}}, session=session,
        return_document=True)
    assert counter is not None, "the counter document is created before the transaction"
    return int(counter["seq"]) - count + 1


def ledger_update(issue: IssueDraft, number: str) -> tuple[Doc, Doc]:
    """(filter, update) of the tenant document once `issue` is issued as `number`: the ledger
    (`Ledger.after`) and the last invoiced period's end, only while `ledger_rev` is still the
    one read (matching nothing means the ledger moved)."""
    period, currency, coupon = issue.period, issue.config.settings.currency, issue.config.coupon
    after = issue.ledger.after(issue.draft, coupon, issue.invoice_id, number, period.end,
                               currency)
    return ({"_id": issue.tenant_id, "ledger_rev": issue.ledger.rev},
            {"$inc": {"ledger_rev": 1, "invoices": 1},
             "$set": {**after, "last_period_end": period.end}})


async def _prepare(store: InvoicerStore, tenant_id: str, year: int) -> None:
    """Create, outside the transaction, the documents it only `$inc`s: the year's invoice
    counter and the redemption counts of the tenant's coupon codes."""
    await store.ensure_counter(invoice_counter(year))
    tenant = await store.tenant(tenant_id)
    if tenant is None:
        raise LookupError(f"tenant {tenant_id!r} has no billing configuration")
    for code in sorted(coupon_codes(tenant, await store.config_versions(tenant_id))):
        await ensure_coupon_count(store.db, code)
