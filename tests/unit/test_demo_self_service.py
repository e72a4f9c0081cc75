"""The demo's plan catalog and the self-service step's pieces that need no stack: the plans
file `billing plans apply` reads, which emails count as threshold emails, the deadline of a
wait."""

import asyncio
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path

import pytest

from services.demo import plans, self_service
from services.invoicer import api as invoicer

pytestmark = pytest.mark.unit


def test_the_catalog_file_is_one_the_plans_command_accepts(tmp_path: Path) -> None:
    path = plans.write_plans(tmp_path)
    assert path == tmp_path / "plans.json"
    catalog = {p.code: p for p in invoicer.read_plans_file(path)}
    assert list(catalog) == ["starter", "team", "business"]
    assert {p.currency for p in catalog.values()} == {"USD"}
    assert [p.flat_amount for p in catalog.values()] == [900, 4900, 19900]  # dearer each
    (starter,) = catalog["starter"].limits
    assert (starter.meter, starter.limit, starter.hard) == ("computations", Decimal(1000), True)
    team = {lim.meter: lim for lim in catalog["team"].limits}
    assert team["computations"].limit == 10000 and not team["computations"].hard
    assert team["storage_gb"].limit == 500 and not team["storage_gb"].hard


def test_the_self_service_tenants_pick_a_plan_of_the_catalog() -> None:
    codes = {p["code"] for p in plans.CATALOG}
    assert {t.plan_code for t in self_service.TENANTS} <= codes
    limited = [t for t in self_service.TENANTS if t.use_up_limit]
    assert [t.plan_code for t in limited] == ["starter"]  # the one with a hard limit
    starter = next(p for p in plans.CATALOG if p["code"] == "starter")
    assert starter["limits"][0]["limit"] == str(self_service.USAGE_EVENTS)
    assert self_service.EMAILS == {t.email for t in self_service.TENANTS}


def _eml(folder: Path, name: str, tenant: str, notification: str, subject: str) -> None:
    message = EmailMessage()
    message["To"] = f"billing@{tenant}.example"
    message["Subject"] = subject
    message["X-Billing-Tenant"] = tenant
    message["X-Billing-Notification"] = notification
    message.set_content("text")
    (folder / name).write_bytes(bytes(message))


def test_threshold_emails_are_the_tenants_usage_alerts_only(tmp_path: Path) -> None:
    _eml(tmp_path, "1.eml", "nova", "ev-1:usage_alert", "You have used 80 % of your limit")
    _eml(tmp_path, "2.eml", "nova", "inv-1:invoice_issued", "Your invoice INV-1")
    _eml(tmp_path, "3.eml", "orbit", "ev-2:usage_alert", "You have used 80 % of your limit")
    _eml(tmp_path, "4.eml", "nova", "ev-3:usage_alert", "You have used 100 % of your limit")
    found = self_service.threshold_emails(tmp_path, "nova")
    assert [f["file"] for f in found] == ["1.eml", "4.eml"]
    assert found[1] == {"file": "4.eml", "to": "billing@nova.example",
                        "subject": "You have used 100 % of your limit"}
    assert self_service.threshold_emails(tmp_path, "nobody") == []


def test_a_wait_returns_what_it_waited_for_or_fails_at_its_deadline() -> None:
    answers = iter([None, {}, {"status": "active"}])

    async def check() -> object:
        return next(answers)

    assert asyncio.run(self_service.until(check, "it")) == {"status": "active"}

    async def never() -> None:
        return None

    with pytest.raises(self_service.NotInTime, match="the subscription not within 0 s"):
        asyncio.run(self_service.until(never, "the subscription", seconds=0))
