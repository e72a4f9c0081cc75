"""`TenantLedger`: a tenant's configuration versions and ledger (coupon uses, credits used, the
carried credit balance), as the use cases read and record them; the MongoDB implementation is
`InvoicerStore` (`invoicer_configs`, `invoicer_tenants`), `InMemoryTenantLedger` holds them in
this process. One suite (tests/contracts/test_tenant_ledger.py) checks both.

Versions follow submission order and are numbered from 1 (docs/configuration.md,
"Submissions and versions"); the version in force at an instant prices the period ending then
(docs/billing-periods.md, "Version in force"). `session` is the MongoDB session of the caller's
transaction (ignored in memory).
"""

from datetime import datetime
from typing import Any, Protocol

from pymongo.asynchronous.client_session import AsyncClientSession

from contracts import BillingConfigSubmitted
from services.invoicer.ledger import Ledger
from services.invoicer.versions import ConfigVersion, in_force

Doc = dict[str, Any]


class TenantLedger(Protocol):
    """Configuration versions and the ledger of each tenant."""

    async def tenant(self, tenant_id: str, session: AsyncClientSession | None = None) -> Doc | None:
        """The tenant document (`version`, current `config` as JSON, `ledger_rev`, `coupons`,
        `credits_used`, `credit_balance`, `invoices`), or None before its first version."""
        ...

    async def all_tenants(self) -> list[Doc]:
        """Every configured tenant, by id."""
        ...

    async def config_versions(
        self, tenant_id: str, session: AsyncClientSession | None = None
    ) -> list[ConfigVersion]:
        """Every accepted version of `tenant_id`, by number."""
        ...

    async def config_in_force(
        self, tenant_id: str, at: datetime, session: AsyncClientSession | None = None
    ) -> ConfigVersion | None:
        """The version in force at `at`, or None without versions."""
        ...

    async def add_config_version(
        self, command: BillingConfigSubmitted, version: int, now: datetime,
        session: AsyncClientSession,
    ) -> None:
        """Record `command` as `version` and make it current (a new tenant starts with an
        empty ledger at `ledger_rev` 0)."""
        ...


async def ledger_of(tenants: TenantLedger, tenant_id: str,
                    session: AsyncClientSession | None = None) -> Ledger | None:
    """The tenant's ledger as read (in `session`), or None for an unknown tenant."""
    doc = await tenants.tenant(tenant_id, session)
    return None if doc is None else Ledger.of(doc)


class InMemoryTenantLedger:
    """`TenantLedger` in dictionaries (see the module docstring)."""

    def __init__(self) -> None:
        self.tenants: dict[str, Doc] = {}
        self.versions: dict[str, list[ConfigVersion]] = {}

    async def tenant(self, tenant_id: str, session: AsyncClientSession | None = None) -> Doc | None:
        """See `TenantLedger.tenant`."""
        doc = self.tenants.get(tenant_id)
        return None if doc is None else dict(doc)

    async def all_tenants(self) -> list[Doc]:
        """See `TenantLedger.all_tenants`."""
        return [dict(self.tenants[k]) for k in sorted(self.tenants)]

    async def config_versions(
        self, tenant_id: str, session: AsyncClientSession | None = None
    ) -> list[ConfigVersion]:
        """See `TenantLedger.config_versions`."""
        return sorted(self.versions.get(tenant_id, []), key=lambda v: v.number)

    async def config_in_force(
        self, tenant_id: str, at: datetime, session: AsyncClientSession | None = None
    ) -> ConfigVersion | None:
        """See `TenantLedger.config_in_force`."""
        versions = await self.config_versions(tenant_id)
        return in_force(versions, at) if versions else None

    async def add_config_version(
        self, command: BillingConfigSubmitted, version: int, now: datetime,
        session: AsyncClientSession | None = None,
    ) -> None:
        """See `TenantLedger.add_config_version`."""
        self.versions.setdefault(command.tenant_id, []).append(ConfigVersion(version, command))
        doc = self.tenants.setdefault(command.tenant_id, {
            "_id": command.tenant_id, "ledger_rev": 0, "coupons": [], "credits_used": [],
            "invoices": 0, "created_at": now})
        doc.update(version=version, config=command.model_dump(mode="json"),
                   tenant_name=command.tenant_name,
                   auto_generate_invoices=command.settings.auto_generate_invoices,
                   updated_at=now)
