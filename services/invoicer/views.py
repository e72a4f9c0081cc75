"""Read views over the invoicer's collections for the Billing API (docs/api-endpoints.md).

Every function takes the caller's `AsyncDatabase` (the platform's Decimal codec, tz-aware
datetimes: `services.common.mongo.database`) and returns plain JSON-able dicts: amounts in
minor units (int) with their currency, instants as tz-aware `datetime`, quantities as
`Decimal`. Nothing here writes. Lists are ordered by a unique key (`after` = the last key of
the previous page) so the caller can page through them with a cursor.
"""

import asyncio
import functools
import re
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from contracts import BillingConfigSubmitted
from contracts.invoices import InvoiceStatus
from services.common.invoice_document import Seller
from services.invoicer.adapters.store import AUDIT, CONFIGS, INVOICES, TENANTS, InvoicerStore
from services.invoicer.domain import UNPAID
from services.invoicer.ledger import Ledger, coupon_in_effect
from services.invoicer.reports import STATUS_FILTERS, totals
from services.invoicer.versions import ConfigVersion, in_force

Doc = dict[str, Any]
Db = AsyncDatabase[Doc]
#: How many recent submissions (applied and refused, each) the configuration view shows.
RECENT_SUBMISSIONS = 20


def store_of(db: Db) -> InvoicerStore:
    """An `InvoicerStore` on `db` (its client is the database's own)."""
    return InvoicerStore(db.client, db)


async def _open_amounts(db: Db, tenant_ids: list[str]) -> dict[str, Doc]:
    """Per tenant: unpaid amounts per currency (minor units) and the overdue count."""
    found: dict[str, Doc] = {t: {"outstanding": {}, "overdue_count": 0} for t in tenant_ids}
    pipeline: list[Doc] = [
        {"$match": {"tenant_id": {"$in": tenant_ids}, "status": {"$in": list(UNPAID)}}},
        {"$group": {"_id": {"t": "$tenant_id", "c": "$currency", "s": "$status"},
                    "amount": {"$sum": "$amount"}, "n": {"$sum": 1}}},
    ]
    async for row in await db[INVOICES].aggregate(pipeline):
        view = found[row["_id"]["t"]]
        currency = row["_id"]["c"]
        view["outstanding"][currency] = view["outstanding"].get(currency, 0) + int(row["amount"])
        if row["_id"]["s"] == InvoiceStatus.overdue:
            view["overdue_count"] += int(row["n"])
    return found


async def status_counts(db: Db, tenant_id: str) -> dict[str, int]:
    """How many of the tenant's invoices are in each status (`paid`, `pending_payment`,
    `failed`, `overdue`), counted by the database in one query."""
    pipeline: list[Doc] = [{"$match": {"tenant_id": tenant_id}},
                           {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
    return {str(row["_id"]): int(row["n"]) async for row in await db[INVOICES].aggregate(pipeline)}


def _summary(tenant: Doc, amounts: Doc) -> Doc:
    config = BillingConfigSubmitted.model_validate(tenant["config"])
    return {
        "tenant_id": tenant["_id"], "name": config.tenant_name or tenant["_id"],
        "currency": config.settings.currency,
        "billing_frequency": config.settings.billing_frequency,
        "timezone": config.timezone, "config_version": int(tenant["version"]),
        "outstanding": dict(sorted(amounts["outstanding"].items())),
        "overdue_count": amounts["overdue_count"],
    }


async def tenant_rows(db: Db, *, after: str | None = None, limit: int = 50,
                      q: str | None = None) -> list[Doc]:
    """Up to `limit` tenant summaries by tenant id, ids greater than `after`; `q` keeps the
    tenants whose id or name contains it (case-insensitive). A summary: `tenant_id`, `name`,
    `currency`, `billing_frequency`, `timezone`, `config_version` (the current one),
    `outstanding` (unpaid minor units per currency) and `overdue_count`."""
    query: Doc = {}
    if after is not None:
        query["_id"] = {"$gt": after}
    if q:
        pattern = {"$regex": re.escape(q), "$options": "i"}
        query["$or"] = [{"_id": pattern}, {"tenant_name": pattern}]
    docs = await db[TENANTS].find(query).sort("_id", ASCENDING).limit(limit).to_list()
    amounts = await _open_amounts(db, [d["_id"] for d in docs])
    return [_summary(d, amounts[d["_id"]]) for d in docs]


async def tenant_summary(db: Db, tenant_id: str) -> Doc | None:
    """One tenant's summary (see `tenant_rows`), or None when it has no configuration."""
    doc = await db[TENANTS].find_one({"_id": tenant_id})
    if doc is None:
        return None
    return _summary(doc, (await _open_amounts(db, [tenant_id]))[tenant_id])


def _config_body(command: BillingConfigSubmitted, tenant: Doc, at: datetime) -> Doc:
    """The configuration's fields, with the coupon and credits as the ledger sees them at `at`:
    the coupon that would reduce an invoice issued then (a redeemed catalog coupon replaces the
    configuration's: `ledger.coupon_in_effect`), and the configured credits followed by the
    tenant's other credits in the configuration's currency (granted through the API, or
    carried from a late-usage correction), each with what is used and what remains."""
    ledger = Ledger.of(tenant)
    coupon = coupon_in_effect(command, tenant, at).coupon
    currency = command.settings.currency
    granted = [(c.credit_id, c.amount, c.reason, c.granted_at) for c in command.credits]
    granted += [(b["credit_id"], int(b["amount"]), b["reason"], b["granted_at"])
                for b in tenant.get("credit_balance", [])
                if b.get("currency", currency) == currency]
    return {
        "settings": command.settings.model_dump(mode="json"),
        "timezone": command.timezone,
        "effective_from": command.effective_from.isoformat(),
        "price_plan": command.price_plan.model_dump(mode="json"),
        "coupon": None if coupon is None else {
            **coupon.model_dump(mode="json"),
            "invoices_reduced": ledger.coupon_uses.get(coupon.code, 0)},
        "credits": [
            {"credit_id": credit_id, "amount": amount, "reason": reason, "granted_at": granted_at,
             "used": ledger.credits_used.get(credit_id, 0),
             "remaining": amount - ledger.credits_used.get(credit_id, 0)}
            for credit_id, amount, reason, granted_at in granted],
    }


async def billing_config(db: Db, tenant_id: str, at: datetime) -> Doc | None:
    """A tenant's billing configuration, or None when it has none:

    - `in_force`: the version in force at `at` (docs/billing-periods.md, "Version in
      force"): `version`, `settings` (the eight fields), `timezone`, `effective_from`,
      `price_plan`, `coupon` (with `invoices_reduced`), `credits` (with `used`, `remaining`);
    - `current_version`: the latest accepted version (it may not be in force yet);
    - `history`: every version: `version`, `event_id` (the submission id), `submitted_at`,
      `accepted_at`, `actor` (`user_id`, `role`), `effective_from`;
    - `submissions`: the most recent outcomes by submission id: `{"outcome": "applied",
      "version", "at"}` or `{"outcome": "refused", "reason", "detail", "at"}`.
    """
    tenant = await db[TENANTS].find_one({"_id": tenant_id})
    if tenant is None:
        return None
    docs = await db[CONFIGS].find({"tenant_id": tenant_id}).sort("version", ASCENDING).to_list()
    versions = [ConfigVersion(int(d["version"]), BillingConfigSubmitted.model_validate(
        d["command"])) for d in docs] or [  # a tenant without recorded versions: its current one
        ConfigVersion(int(tenant["version"]), BillingConfigSubmitted.model_validate(
            tenant["config"]))]
    current = in_force(versions, at)
    history = [{"version": int(d["version"]), "event_id": d["event_id"],
                "submitted_at": d["submitted_at"], "accepted_at": d["accepted_at"],
                "actor": d["actor"], "effective_from": d["command"]["effective_from"]}
               for d in docs]
    submissions: dict[str, Doc] = {}
    for d in docs[-RECENT_SUBMISSIONS:]:
        submissions[d["event_id"]] = {"outcome": "applied", "version": int(d["version"]),
                                      "at": d["accepted_at"]}
    refused = db[AUDIT].find({"decision": "refused", "what.tenant_id": tenant_id}).sort(
        "when.refused_at", DESCENDING).limit(RECENT_SUBMISSIONS)
    async for r in refused:
        submissions[r["_id"]] = {"outcome": "refused", "reason": r["why"]["reason"],
                                 "detail": r["why"].get("detail"), "at": r["when"]["refused_at"]}
    return {
        "tenant_id": tenant_id, "current_version": int(tenant["version"]),
        "in_force": {"version": current.number, **_config_body(current.command, tenant, at)},
        "history": history,
        "submissions": dict(sorted(submissions.items(), key=lambda kv: kv[1]["at"])),
    }


async def invoice_rows(db: Db, *, tenant_id: str | None = None, status: str = "all",
                       after: str | None = None, limit: int = 50) -> list[Doc]:
    """Up to `limit` invoice documents by invoice number, numbers greater than `after`,
    optionally of one tenant, filtered all | unpaid | paid (`reports.list_invoices`).
    Raises `ValueError` for another status filter."""
    if status not in STATUS_FILTERS:
        raise ValueError(f"status must be one of {sorted(STATUS_FILTERS)}")
    query: Doc = {}
    if tenant_id is not None:
        query["tenant_id"] = tenant_id
    statuses = STATUS_FILTERS[status]
    if statuses is not None:
        query["status"] = {"$in": list(statuses)}
    if after is not None:
        query["invoice_number"] = {"$gt": after}
    return await db[INVOICES].find(query).sort("invoice_number", ASCENDING).limit(
        limit).to_list()


async def invoice(db: Db, number: str) -> Doc | None:
    """The invoice document numbered `number` (`INV-YYYY-NNNN`; not by id), or None."""
    return await db[INVOICES].find_one({"invoice_number": number})


def timeline(doc: Doc) -> list[Doc]:
    """An invoice's events in the order the invoice went through them: `issued`, every status
    change (`status`, `at`, `cause`: `clock` for overdue, the payment event id otherwise) and
    every refund (`refund_id`, `amount`). `at` is when it happened (a payment's `paid_at`),
    so a payment made before the due date but recorded after the overdue move shows after
    it with an earlier `at`."""
    events: list[Doc] = []
    for h in doc.get("history", []):
        if h.get("cause") == "issued":
            events.append({"event": "issued", "at": h["at"], "status": h["status"]})
        elif h.get("refund_id"):
            events.append({"event": "refunded", "at": h["at"], "status": h["status"],
                           "refund_id": h["refund_id"], "amount": int(h["refunded_amount"]),
                           "cause": h["cause"]})
        else:
            events.append({"event": "status_changed", "at": h["at"], "status": h["status"],
                           "cause": h["cause"]})
    return events


async def invoice_pdf(doc: Doc, db: Db | None = None, seller: Seller | None = None) -> bytes:
    """The invoice's PDF, exactly as `billing invoices pdf` renders it (current status and
    payment fields, headed by `seller`); with `db`, each usage line's tiers from the plan that
    priced it (`document.pricing_of`)."""
    from services.common.invoice_pdf import render_invoice_pdf
    from services.invoicer.api import pdf_bytes
    from services.invoicer.document import pricing_of

    pricing = {} if db is None else await pricing_of(store_of(db), doc)
    return await asyncio.to_thread(
        functools.partial(pdf_bytes, doc, render_invoice_pdf, pricing=pricing, seller=seller))


async def balance(db: Db, tenant_id: str) -> Doc:
    """A tenant's balance (`reports.totals`): `outstanding_balance` and `total_paid` per
    currency (minor units, net of refunds), `overdue_count`, `total_invoices`, and
    `total_refunded` per currency when there are refunds."""
    return totals(await store_of(db).find_invoices(tenant_id))
