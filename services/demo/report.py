"""The demo's report: `invoices.json`, PDFs, emails, dead letters, what the Stripe fake holds and
`summary.json`, read back from the platform's public APIs, its topics and the stack's sinks."""

import json
import shutil
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from contracts import TOPIC_DEAD_LETTER, TOPIC_NOTIFICATION, TOPIC_PAYMENT
from services.common.settings import CommonSettings
from services.demo import steps
from services.demo.topics import read_topic


async def payment_intents(api_base: str, api_key: str) -> list[dict[str, Any]]:
    """Every PaymentIntent the Stripe API at `api_base` holds, oldest first, as {id, invoice_id,
    attempt, amount (minor units), currency, status, customer}; follows Stripe's list paging."""
    found: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "100"}
    async with httpx.AsyncClient(
        base_url=api_base, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
    ) as http:
        while True:
            page = (await http.get("/v1/payment_intents", params=params)).raise_for_status()
            body = page.json()
            for pi in body["data"]:
                metadata = pi.get("metadata") or {}
                found.append(
                    {
                        "id": pi["id"],
                        "invoice_id": metadata.get("invoice_id"),
                        "attempt": metadata.get("attempt"),
                        "amount": pi["amount"],
                        "currency": pi["currency"],
                        "status": pi["status"],
                        "customer": pi.get("customer"),
                    }
                )
            if not body.get("has_more") or not body["data"]:
                break
            params["starting_after"] = body["data"][-1]["id"]
    return found[::-1]


async def platform_counts(settings: CommonSettings, mail_dir: Path) -> dict[str, int]:
    """Invoices, Stripe PaymentIntents, emails the SMTP sink wrote to `mail_dir`, and the
    collector's `aggregated` and `duplicates` totals."""
    pay = steps.payments_settings()
    stats = await steps.collector_totals(settings)
    return {
        "invoices": len(await steps.export_invoices(settings)),
        "payment_intents": len(await payment_intents(pay.stripe_api_base, pay.stripe_api_key)),
        "emails": len(list(mail_dir.glob("*.eml"))),
        "aggregated": stats.get("aggregated", 0),
        "duplicates": stats.get("duplicates", 0),
    }


def copy_emails(mail_src: Path, mail_dst: Path) -> int:
    """Copy every `.eml` the SMTP sink wrote to `mail_dst` (emptied first); returns how many."""
    shutil.rmtree(mail_dst, ignore_errors=True)
    mail_dst.mkdir(parents=True)
    for eml in sorted(mail_src.glob("*.eml")):
        shutil.copy2(eml, mail_dst / eml.name)
    return len(list(mail_dst.glob("*.eml")))


async def write_report(
    settings: CommonSettings,
    out: Path,
    mail_src: Path,
    import_report: dict[str, Any],
    tenant_ids: list[str],
    as_of: datetime,
    collector: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Write the output folder's files and return the summary's platform figures (events,
    invoices, payments, emails); the caller adds its own (timing, restarts, faults).
    `collector`: the collector's totals to report for the imported events (taken before
    later usage, such as the self-service step's, was sent); default: read now."""
    invoices = await steps.export_invoices(settings)
    (out / "invoices.json").write_text(json.dumps(invoices, indent=2) + "\n")
    pdfs = await steps.write_pdfs(settings, out / "invoices")
    emails = copy_emails(mail_src, out / "emails")
    dead = await read_topic(settings, TOPIC_DEAD_LETTER)
    (out / "dead-letters.jsonl").write_text(
        "".join(json.dumps(record["value"]) + "\n" for record in dead)
    )
    pay = steps.payments_settings()
    intents = await payment_intents(pay.stripe_api_base, pay.stripe_api_key)
    (out / "stripe-payment-intents.json").write_text(json.dumps(intents, indent=2) + "\n")
    payments = await read_topic(settings, TOPIC_PAYMENT)
    notes = await read_topic(settings, TOPIC_NOTIFICATION)
    stats = collector if collector is not None else await steps.collector_totals(settings)
    dead_by_service = Counter(
        r["value"].get("service") for r in dead if isinstance(r["value"], dict)
    )
    return {
        "as_of": as_of.isoformat(),
        "tenants": len(tenant_ids),
        "events": {
            "read": import_report.get("events_read", 0),
            "published": import_report.get("events_published", 0),
            "aggregated": stats.get("aggregated", 0),
            "duplicates": stats.get("duplicates", 0),
            "dead_lettered": sum(dead_by_service.values()),
            "dead_lettered_by_service": dict(dead_by_service),
            "rows_read": import_report.get("rows_read", 0),
        },
        "invoices": {
            "total": len(invoices),
            "by_status": dict(Counter(i["status"] for i in invoices)),
            "pdfs": pdfs,
        },
        "payments": {**payment_counts(payments), "stripe_payment_intents": len(intents)},
        "emails": {
            "files": emails,
            "by_kind": dict(
                Counter(n["value"].get("kind") for n in unique(notes, "NotificationSent"))
            ),
            "failed": len(unique(notes, "NotificationFailed")),
        },
    }


def unique(records: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    """Records of `event_type`, one per event id (an outbox may republish after a crash)."""
    seen: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["type"] == event_type and isinstance(r["value"], dict):
            seen.setdefault(str(r["value"].get("event_id")), r)
    return list(seen.values())


def payment_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """Attempts, successes (by card) and failures among the payment topic's records."""
    succeeded = unique(records, "PaymentSucceeded")
    failed = unique(records, "PaymentFailed")
    charged = [
        r for r in succeeded if str(r["value"].get("payment_reference", "")).startswith("pi_")
    ]
    return {
        "attempted": len(charged) + len(failed),
        "succeeded": len(succeeded),
        "succeeded_by_card": len(charged),
        "failed": len(failed),
    }
