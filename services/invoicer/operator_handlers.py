"""Use cases of the operator's money commands read from `billing.tenant-config.v1`:
`CreditGranted`, `CouponCreated`, `CouponRedeemed` (docs/configuration.md, "Credits and
coupons"; rules in `operator_rules`).

Each is verified like a configuration command (signature under the platform's command signing
key, then the actor's role), runs in one MongoDB transaction with its processed-event record
(idempotent per event id), and a refusal is audited in `invoicer_audit` before it is raised
(the worker dead-letters it with its reason).
"""

import logging

from pymongo.asynchronous.client_session import AsyncClientSession

from contracts import CouponCreated, CouponRedeemed, CreditGranted
from contracts.base import utc_now
from services.common.errors import PermanentError
from services.invoicer.adapters.catalog import (
    add_credit,
    catalog_coupon,
    coupon_fields,
    insert_coupon,
    record_redemption,
)
from services.invoicer.adapters.store import InvoicerStore, tenant_config
from services.invoicer.handlers import refuse_unless_signed
from services.invoicer.metrics import CONFIG_REFUSALS
from services.invoicer.operator_rules import (
    OperatorCommand,
    authorize_operator,
    check_currency,
    check_known_tenant,
    check_redeemable,
    same_coupon,
    validate_coupon,
)

log = logging.getLogger(__name__)
#: The consumer name of the processed-event records of the three commands.
OPERATOR_CONSUMER = "invoicer.operator"


async def apply_signed_operator(
    store: InvoicerStore, command: OperatorCommand, key: bytes
) -> str | None:
    """Verify `command`'s signature under `key`, then apply it (`apply_operator`). An unsigned
    or badly signed command is audited and refused with `Forbidden` (dead letter `forbidden`)
    before anything else is looked at."""
    await refuse_unless_signed(
        store, command, key, f"{type(command).__name__} command {command.event_id!r}")
    return await apply_operator(store, command)


async def apply_operator(store: InvoicerStore, command: OperatorCommand) -> str | None:
    """Apply a verified operator command; returns what changed (`credit_granted`,
    `coupon_created`, `coupon_redeemed`) or None when nothing did (a redelivered event id, a
    coupon created again with the same fields, a code the tenant has redeemed already).

    Raises, after auditing the refusal, the `PermanentError` of `operator_rules` (`forbidden`,
    `validation_error`, `unknown_tenant`, `currency_mismatch`, `coupon_exists`,
    `coupon_unknown`, `coupon_exhausted`)."""
    try:
        authorize_operator(command)
        if isinstance(command, CouponCreated):
            validate_coupon(command)
        outcome = await store.transaction(lambda session: _apply(store, command, session))
    except PermanentError as exc:
        await store.record_refusal(command, exc.reason, exc.detail, utc_now())
        CONFIG_REFUSALS.labels(cause=exc.reason).inc()
        raise
    if outcome is not None:
        log.info("%s: %s", type(command).__name__, outcome,
                 extra={"tenant_id": getattr(command, "tenant_id", None)})
    return outcome


async def _apply(
    store: InvoicerStore, command: OperatorCommand, session: AsyncClientSession
) -> str | None:
    if await store.seen(OPERATOR_CONSUMER, command.event_id, session):
        return None
    if isinstance(command, CreditGranted):
        outcome = await _grant(store, command, session)
    elif isinstance(command, CouponCreated):
        outcome = await _create(store, command, session)
    else:
        outcome = await _redeem(store, command, session)
    await store.mark_processed(OPERATOR_CONSUMER, command.event_id, session)
    return outcome


async def _grant(
    store: InvoicerStore, command: CreditGranted, session: AsyncClientSession
) -> str | None:
    tenant = check_known_tenant(await store.tenant(command.tenant_id, session), command.tenant_id)
    check_currency(tenant_config(tenant).settings.currency, command.currency,
                   f"credit {command.credit_id!r}")
    if any(c.get("credit_id") == command.credit_id for c in tenant.get("credit_balance", [])):
        return None
    await add_credit(store.db, command, session)
    return "credit_granted"


async def _create(
    store: InvoicerStore, command: CouponCreated, session: AsyncClientSession
) -> str | None:
    existing = await catalog_coupon(store.db, command.code, session)
    if existing is not None:
        same_coupon(existing, coupon_fields(command))
        return None
    await insert_coupon(store.db, command, utc_now(), session)
    return "coupon_created"


async def _redeem(
    store: InvoicerStore, command: CouponRedeemed, session: AsyncClientSession
) -> str | None:
    tenant = check_known_tenant(await store.tenant(command.tenant_id, session), command.tenant_id)
    currency = tenant_config(tenant).settings.currency
    coupon = check_redeemable(await catalog_coupon(store.db, command.code, session),
                              command.code, command.tenant_id, currency)
    if (tenant.get("redeemed_coupon") or {}).get("code") == command.code:
        return None
    counted = command.tenant_id in coupon.get("redeemed_by", [])
    await record_redemption(store.db, command, coupon, not counted, session)
    return "coupon_redeemed"
