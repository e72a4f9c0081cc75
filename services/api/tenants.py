"""Looking up the tenant a request names, for the read and write endpoints alike."""

from contracts import BillingConfigSubmitted
from services.api.auth import check_tenant
from services.api.context import ApiContext
from services.api.principal import Principal
from services.api.problems import not_found
from services.invoicer import api as invoicer


async def tenant_config(ctx: ApiContext, who: Principal, tenant_id: str) -> BillingConfigSubmitted:
    """The tenant's current configuration (one read of its document), after the access check
    (`check_tenant`: 404 for another tenant's key); 404 when the invoicer does not know it."""
    check_tenant(who, tenant_id)
    found = await invoicer.current_config(ctx.db, tenant_id)
    if found is None:
        raise not_found(f"tenant {tenant_id!r}")
    return found
