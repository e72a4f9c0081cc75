"""The demo's self-service step: two new tenants subscribe to catalog plans through the Billing
API and Stripe Checkout, and one of them uses up its plan's hard limit.

It runs on the wall clock, after the billing clock has reached `as_of`: the subscriptions start
now (when Stripe's signed `checkout.session.completed` webhook has been reconciled), so the
earlier tenants' invoices are untouched. For each tenant (`TENANTS`):

1. a `tenant` API key (added to `api-keys.json`, so `--keep-running` prints its portal link);
2. `PUT /v1/tenants/{id}/billing-customer` (its Stripe customer);
3. `POST /v1/tenants/{id}/subscription` `start` answers `checkout` (no card on file); the
   Checkout's hosted page of the Stripe fake is completed over HTTP with the test card
   4242 4242 4242 4242, as a browser posts the form; then `GET .../subscription` is polled
   until `active`.

The tenant on `starter` (1,000 computations, a hard limit) then sends 1,000 `computations`
usage events dated now through `POST /v1/usage` (the `ingest` key); the demo waits for the
80 % and 100 % threshold emails in the SMTP sink and reads
`GET /v1/tenants/{id}/entitlements/computations`, which answers `allowed: false`
(docs/limits.md). Every wait has a deadline: what did not happen in time is returned in
`problems` (the demo's `unsettled`), never waited for forever.
"""

import asyncio
import email
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from services.api import api as billing_api
from services.demo.api_access import ApiKeys, write_keys

Say = Callable[[str], None]
#: Seconds each wait of the step may take before it is reported as not settled.
WAIT_SECONDS = 60.0
#: The Stripe test card the hosted Checkout page is completed with.
TEST_CARD = {"card_number": "4242 4242 4242 4242", "expiry": "12 / 34", "cvc": "123"}
#: The metered usage the limited tenant sends, and how many events (one computation each).
METER = "computations"
USAGE_EVENTS = 1000
USAGE_SOURCE = "demo-self-service"


@dataclass(frozen=True)
class NewTenant:
    """A tenant that signs up on its own: its billing customer and the plan it picks;
    `use_up_limit`: it then sends as many computations as its plan's limit allows."""

    tenant_id: str
    name: str
    email: str
    country: str
    city: str
    plan_code: str
    use_up_limit: bool = False

    def customer(self) -> dict[str, str]:
        """The `PUT .../billing-customer` body."""
        return {"name": self.name, "email": self.email, "address_line1": "1 Demo Street",
                "city": self.city, "postal_code": "10115", "country": self.country}


TENANTS = (
    NewTenant("orbit-labs", "Orbit Labs GmbH", "billing@orbit-labs.example", "DE", "Berlin",
              "team"),
    NewTenant("nova-analytics", "Nova Analytics Ltd", "accounts@nova-analytics.example",
              "GB", "London", "starter", use_up_limit=True),
)
#: The billing emails of the self-service tenants (their threshold emails go there).
EMAILS = frozenset(t.email for t in TENANTS)


class NotInTime(RuntimeError):
    """A wait of the step reached its deadline; the message says what was awaited."""


@dataclass
class SelfService:
    """What the step did, for `summary.json`'s `self_service` section; `problems` what did
    not happen in time (empty when all went well)."""

    started_at: str = ""
    seconds: float = 0.0
    tenants: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The `self_service` section."""
        return {"clock": "wall", "started_at": self.started_at, "seconds": self.seconds,
                "tenants": self.tenants, "problems": self.problems}


async def until(check: Callable[[], Awaitable[Any]], what: str,
                seconds: float = WAIT_SECONDS) -> Any:
    """Await `check()` until it returns something truthy and return it; `NotInTime` naming
    `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise NotInTime(f"{what} not within {seconds:.0f} s")
        await asyncio.sleep(0.2)


def threshold_emails(mail_dir: Path, tenant_id: str) -> list[dict[str, str]]:
    """The usage-alert emails the SMTP sink holds for `tenant_id` (`X-Billing-Tenant`), as
    {file, to, subject}, by file name."""
    found = []
    for path in sorted(mail_dir.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes())
        kind = str(message["X-Billing-Notification"]).rsplit(":", 1)[-1]
        if message["X-Billing-Tenant"] == tenant_id and kind == "usage_alert":
            found.append({"file": path.name, "to": str(message["To"]),
                          "subject": str(message["Subject"])})
    return found


def _limit_text(value: str | None) -> str:
    return f"{Decimal(value):,.0f}" if value is not None else "no limit"


class Step:
    """One run of the self-service step against the API at `keys.url`."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], keys: ApiKeys, keys_file: Path,
                 mail_dir: Path, say: Say) -> None:
        self.db, self.keys, self.keys_file = db, keys, keys_file
        self.mail_dir, self.say = mail_dir, say
        self.result = SelfService()
        self.http = httpx.AsyncClient(base_url=keys.url, timeout=30)

    def _auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def _call(self, method: str, path: str, key: str, expect: int,
                    **kwargs: Any) -> Any:
        response = await self.http.request(method, path, headers=self._auth(key), **kwargs)
        if response.status_code != expect:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    async def run(self) -> SelfService:
        """Every tenant of `TENANTS` signs up; a failure of one is recorded in `problems` and
        the next one still runs."""
        self.result.started_at = datetime.now(UTC).isoformat()
        began = time.monotonic()
        self.say("self-service on the wall clock (subscriptions start now, "
                 f"{self.result.started_at[:16]}Z): two new tenants sign up through the API")
        try:
            for tenant in TENANTS:
                try:
                    await self._sign_up(tenant)
                    if tenant.use_up_limit:
                        await self._use_up_limit(tenant)
                except (NotInTime, RuntimeError, httpx.HTTPError) as exc:
                    self.result.problems.append(f"self-service {tenant.tenant_id}: {exc}")
                    self.say(f"[red]self-service {tenant.tenant_id}[/]: {exc}")
        finally:
            await self.http.aclose()
        self.result.seconds = round(time.monotonic() - began, 1)
        self.say(f"self-service done in {self.result.seconds} s")
        return self.result

    async def _sign_up(self, tenant: NewTenant) -> None:
        tid = tenant.tenant_id
        key = await billing_api.create_key(self.db, role="tenant", name=f"demo tenant {tid}",
                                           tenant_id=tid)
        self.keys.tenants[tid] = key
        write_keys(self.keys, self.keys_file)
        record: dict[str, Any] = {"plan_code": tenant.plan_code, "billing_email": tenant.email}
        self.result.tenants[tid] = record
        customer = await self._call("PUT", f"/v1/tenants/{tid}/billing-customer", key, 200,
                                    json=tenant.customer())
        record["stripe_customer"] = customer["customer_id"]
        self.say(f"{tid} saved its billing details (Stripe customer {customer['customer_id']})")
        answer = await self._call("POST", f"/v1/tenants/{tid}/subscription", key, 202,
                                  json={"action": "start", "plan_code": tenant.plan_code})
        if answer["outcome"] != "checkout":
            raise RuntimeError(f"expected a Checkout for a tenant without a card, got {answer}")
        pending = await self._call("GET", f"/v1/tenants/{tid}/subscription", key, 200)
        record["status_before_checkout"] = pending["status"]  # `incomplete`: Stripe decides
        await self._complete_checkout(answer["checkout_url"], tenant.name)
        record["checkout"] = "completed"
        sub = await until(lambda: self._active(tid, key), f"{tid}'s active subscription")
        record |= {"status": sub["status"], "plan_name": sub["plan_name"],
                   "plan_version": sub["plan_version"],
                   "current_period_start": sub["current_period_start"],
                   "current_period_end": sub["current_period_end"]}
        self.say(f"{tid} subscribed to {sub['plan_name']} through Stripe Checkout "
                 f"(card 4242; active from the webhook, period until "
                 f"{sub['current_period_end'][:10]})")

    async def _complete_checkout(self, url: str, name: str) -> None:
        """Post the hosted Checkout page's card form as a browser does; Stripe's answer is a
        303 to the Checkout's `success_url`."""
        async with httpx.AsyncClient(timeout=30, follow_redirects=False) as browser:
            (await browser.get(url)).raise_for_status()
            response = await browser.post(url, data={**TEST_CARD, "name": name})
        if response.status_code != 303:
            raise RuntimeError(f"the hosted Checkout answered {response.status_code}, not 303")

    async def _active(self, tid: str, key: str) -> dict[str, Any] | None:
        response = await self.http.get(f"/v1/tenants/{tid}/subscription",
                                       headers=self._auth(key))
        body: dict[str, Any] = response.json() if response.status_code == 200 else {}
        return body if body.get("status") == "active" else None

    async def _use_up_limit(self, tenant: NewTenant) -> None:
        tid, key = tenant.tenant_id, self.keys.tenants[tenant.tenant_id]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        run = uuid.uuid4().hex[:8]
        batch = [{"specversion": "1.0", "id": f"{tid}-{run}-{n}", "source": USAGE_SOURCE,
                  "type": "billing.usage", "subject": tid, "time": now,
                  "data": {"meter": METER, "quantity": "1", "service": "jobs"}}
                 for n in range(USAGE_EVENTS)]
        accepted = await self._post_usage(batch)
        record = self.result.tenants[tid]
        record["usage_events_accepted"] = accepted
        self.say(f"{tid} ran {accepted:,} computations (usage events sent through the API)")
        answer = await until(lambda: self._refused(tid, key),
                             f"{tid}'s entitlement answering allowed: false")
        record["entitlement"] = {k: answer[k] for k in
                                 ("limit", "used", "remaining", "allowed", "hard",
                                  "period_end", "as_of")}
        self.say(f"{tid} reached 100 % of its Computations limit "
                 f"({_limit_text(answer['used'])} of {_limit_text(answer['limit'])}): further "
                 "computations are refused")
        emails = await until(
            lambda: self._emails(tid, 2), f"{tid}'s 80 % and 100 % threshold emails")
        record["threshold_emails"] = emails
        self.say(f"emailed {tenant.email}: "
                 + "; ".join(f"{e['subject']} ({e['file']})" for e in emails))

    async def _post_usage(self, batch: list[dict[str, Any]]) -> int:
        response = await self.http.post(
            "/v1/usage", json=batch,
            headers={**self._auth(self.keys.ingest),
                     "Content-Type": "application/cloudevents-batch+json"})
        if response.status_code != 202:
            raise RuntimeError(f"POST /v1/usage: {response.status_code} {response.text[:300]}")
        accepted = int(response.json()["accepted"])
        if accepted != len(batch):
            raise RuntimeError(f"POST /v1/usage accepted {accepted} of {len(batch)} events")
        return accepted

    async def _emails(self, tid: str, count: int) -> list[dict[str, str]] | None:
        found = threshold_emails(self.mail_dir, tid)
        return found if len(found) >= count else None

    async def _refused(self, tid: str, key: str) -> dict[str, Any] | None:
        response = await self.http.get(f"/v1/tenants/{tid}/entitlements/{METER}",
                                       headers=self._auth(key))
        body: dict[str, Any] = response.json() if response.status_code == 200 else {}
        return body if body.get("allowed") is False else None


async def run_self_service(db: AsyncDatabase[dict[str, Any]], keys: ApiKeys, keys_file: Path,
                           mail_dir: Path, say: Say) -> SelfService:
    """Run the step (module docstring) with the demo's API keys (`keys` gains the new
    tenants' keys, and `keys_file` is written again) and the SMTP sink's folder `mail_dir`."""
    return await Step(db, keys, keys_file, mail_dir, say).run()
