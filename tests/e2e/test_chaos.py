"""Faults survived: one month of the real trace for every tenant, run once without faults and
once with `billing demo --chaos` (SIGKILL of every worker kind while usage flows and while the
billing clock moves, a MongoDB restart, a cut broker link, poison messages, then a replay of
every topic from offset 0). The invoices, charges and emails must come out the same.

The two runs are made once for the module (`runs`); each test checks one promise, and the
figures go to the end-of-run table (`tests/support/chaos.py`)."""

import email
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.demo import self_service
from tests.e2e.expected import minor, usage_by_meter
from tests.e2e.runs import run_demo
from tests.support import chaos

pytestmark = pytest.mark.e2e
MONTH = "2013-7"
#: issuing (July and August periods), card payments, globex's declined card with its dunning
#: retries, and its first invoice overdue on 30 August
AS_OF = "2013-09-01T00:00:00Z"
KINDS = ("usage-collector", "invoicer", "payments", "stripe-webhooks", "notifier")
TIMEOUT = 900

@dataclass
class Run:
    """One demo run's output folder and summary."""

    out: Path
    summary: dict[str, Any]

    def invoices(self) -> list[dict[str, Any]]:
        """invoices.json without the Stripe ids (new ones every run)."""
        rows = json.loads((self.out / "invoices.json").read_text())
        return [{k: v for k, v in row.items() if k != "payment_reference"} for row in rows]

    def intents(self) -> list[dict[str, Any]]:
        """The PaymentIntents the Stripe fake held at the end."""
        found: list[dict[str, Any]] = json.loads(
            (self.out / "stripe-payment-intents.json").read_text()
        )
        return found

    def emails(self) -> list[tuple[str, str, str]]:
        """(recipient, subject, notification key) of every email the SMTP sink received,
        but the self-service step's (it runs without `--chaos` only, on the wall clock)."""
        found = []
        for path in sorted((self.out / "emails").glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes())
            if str(message["To"]) in self_service.EMAILS:
                continue
            found.append(
                (
                    str(message["To"]),
                    str(message["Subject"]),
                    str(message["X-Billing-Notification"]),
                )
            )
        return found


def demo(args: list[str], out: Path) -> Run:
    return Run(out, run_demo(args, out, TIMEOUT))


def twice(found: list[Any]) -> int:
    """How many entries of `found` repeat an earlier one."""
    return sum(n - 1 for n in Counter(found).values())


@pytest.fixture(scope="module")
def runs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Run, Run]]:
    """(without faults, with `--chaos`), both on July 2013 for every tenant."""
    base = tmp_path_factory.mktemp("chaos")
    (base / "trace").mkdir()
    (base / "trace" / MONTH).symlink_to(shared_data / "traces" / "bitbrains-rnd" / MONTH)
    args = ["--tenants", str(shared_data / "tenants.json"), "--trace", str(base / "trace")]
    args += ["--as-of", AS_OF]
    plain = demo(args, base / "plain")
    faulty = demo(
        [*args, "--chaos", "--random-state", "7", "--settle-timeout", "240"],
        base / "chaos",
    )
    for name, run in (("demo, no faults", plain), ("demo --chaos", faulty)):
        faults = run.summary.get("faults") or {}
        poison = faults.get("poison") or {}
        replay = run.summary.get("replay") or {}
        chaos.record(
            f"{name}, {MONTH}",
            kills=sum((faults.get("kills") or {}).values()),
            restarts=sum(run.summary["restarts"].values()),
            mongodb_restarts=faults.get("mongodb_restarts", 0),
            link_cuts=faults.get("kafka_link_cuts", 0),
            events=run.summary["events"]["published"],
            aggregated=run.summary["events"]["aggregated"],
            invoices_compared=len(run.invoices()),
            invoices_equal=run.invoices() == plain.invoices(),
            duplicate_charges=twice([(i["invoice_id"], i["attempt"]) for i in run.intents()]),
            duplicate_emails=twice(run.emails()),
            poison_dead_lettered=f"{poison.get('with_expected_reason', 0)}/"
            f"{poison.get('published', 0)}",
            replay_new=sum(v for k, v in (replay.get("new") or {}).items() if k != "duplicates"),
            seconds=run.summary["elapsed_seconds"],
        )
    yield plain, faulty


@pytest.mark.timeout(TIMEOUT * 2)
def test_invoices_are_the_same_with_and_without_faults(runs: tuple[Run, Run]) -> None:
    plain, faulty = runs
    assert plain.summary["settled"] and faulty.summary["settled"], faulty.summary["unsettled"]
    assert faulty.invoices() == plain.invoices()  # numbers, amounts, line items, status, dates
    statuses = {i["status"] for i in plain.invoices()}
    assert {"paid", "overdue"} <= statuses
    assert plain.summary["payments"]["failed"] > 1  # declined, then retried by the dunning
    events = faulty.summary["events"]
    assert events["aggregated"] == plain.summary["events"]["aggregated"] == events["published"]


@pytest.mark.timeout(TIMEOUT * 2)
def test_no_invoice_attempt_is_charged_twice(runs: tuple[Run, Run]) -> None:
    plain, faulty = runs
    attempts = [(i["invoice_id"], i["attempt"]) for i in faulty.intents()]
    assert attempts and all(invoice and attempt for invoice, attempt in attempts)
    assert twice(attempts) == 0
    assert len(attempts) == len(plain.intents())


@pytest.mark.timeout(TIMEOUT * 2)
def test_no_email_is_sent_twice(runs: tuple[Run, Run]) -> None:
    plain, faulty = runs
    assert twice(faulty.emails()) == 0
    assert sorted(faulty.emails()) == sorted(plain.emails())


@pytest.mark.timeout(TIMEOUT * 2)
def test_every_worker_kind_was_killed_and_restarted(runs: tuple[Run, Run]) -> None:
    plain, faulty = runs
    kills = faulty.summary["faults"]["kills"]
    assert all(kills[kind] >= 1 for kind in KINDS), kills
    restarts = faulty.summary["restarts"]
    assert sum(restarts.values()) >= sum(kills.values())
    assert len([name for name in restarts if name.startswith("usage-collector")]) == 2
    assert set(plain.summary["restarts"].values()) == {0}


@pytest.mark.timeout(TIMEOUT * 2)
def test_the_replay_from_offset_zero_adds_nothing(runs: tuple[Run, Run]) -> None:
    _, faulty = runs
    replay = faulty.summary["replay"]
    groups = replay["groups"]
    assert all(group.startswith("replay.") for group in groups), groups
    assert all(group["partitions"] > 0 for group in groups.values()), groups
    usage = groups["replay.usage-collector"]
    new = replay["new"]
    assert new["invoices"] == new["payment_intents"] == new["emails"] == new["aggregated"] == 0
    # the whole month consumed again, each event counted as a duplicate (not aggregated)
    assert new["duplicates"] >= faulty.summary["events"]["published"] >= usage["records"]


@pytest.mark.timeout(TIMEOUT * 2)
def test_mongodb_restart_and_broker_cut_were_survived(runs: tuple[Run, Run]) -> None:
    faults = runs[1].summary["faults"]
    assert faults["mongodb_restarts"] == 1
    assert faults["kafka_link_cuts"] == 1


@pytest.mark.timeout(TIMEOUT * 2)
def test_every_poison_message_is_dead_lettered_with_its_reason(runs: tuple[Run, Run]) -> None:
    poison = runs[1].summary["faults"]["poison"]
    assert poison["published"] > 0
    assert poison["with_expected_reason"] == poison["published"], poison["messages"]


PRICES = {"cpu_hours": "0.04", "memory_gb_hours": "0.005", "bandwidth_gb": "0.09"}


@pytest.mark.timeout(TIMEOUT * 2)
def test_the_real_month_is_invoiced_to_the_cent(runs: tuple[Run, Run]) -> None:
    """acme (USD, monthly on the 1st, $49 flat, a $25 goodwill credit granted on 15 July):
    its June and July invoices against totals computed here from the CSV rows of its VMs."""
    plain, _ = runs
    trace = plain.out.parent / "trace"  # the month both runs imported
    acme = {i["period_start"][:10]: i for i in plain.invoices() if i["tenant_id"] == "acme"}
    periods = [
        (datetime(2013, 6, 1, tzinfo=UTC), datetime(2013, 7, 1, tzinfo=UTC)),
        (datetime(2013, 7, 1, tzinfo=UTC), datetime(2013, 8, 1, tzinfo=UTC)),
    ]
    totals = []
    for start, end in periods:
        invoice = acme[start.date().isoformat()]
        usage = usage_by_meter(trace, {"399", "408"}, start, end)
        lines = {li["meter"]: li for li in invoice["line_items"] if li["kind"] == "usage"}
        for meter, price in PRICES.items():
            assert Decimal(lines[meter]["quantity"]) == usage[meter], meter
            assert lines[meter]["amount"] == minor(usage[meter] * Decimal(price)), meter
        totals.append(4900 + sum(minor(usage[m] * Decimal(p)) for m, p in PRICES.items()))
        assert invoice["currency"] == "USD" and invoice["status"] == "paid"
        pdf = plain.out / "invoices" / f"{invoice['invoice_number']}.pdf"
        assert pdf.read_bytes().startswith(b"%PDF")
    june, july = acme["2013-06-01"], acme["2013-07-01"]
    assert june["amount"] == totals[0]  # the credit granted on 15 July is not applied yet
    assert june["issue_date"] == "2013-07-01" and june["due_date"] == "2013-07-15"
    credit = [li for li in july["line_items"] if li["kind"] == "credit"]
    assert credit and credit[0]["amount"] == -min(2500, totals[1])
    assert july["amount"] == totals[1] + credit[0]["amount"]
