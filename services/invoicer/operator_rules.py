"""Rules of the operator's money commands (pure; no I/O): who may grant credits, create and
redeem coupons, and when the invoicer refuses them (docs/configuration.md, "Credits and
coupons"; the contracts in `contracts/commands.py`).

Refusal reasons (`PermanentError.reason`, dead letter and audit): `forbidden`,
`validation_error`, `unknown_tenant`, `currency_mismatch`, `coupon_exists`, `coupon_unknown`,
`coupon_exhausted`.
"""

from typing import Any

from contracts import CouponCreated, CouponRedeemed, CreditGranted
from services.common.errors import Forbidden, InvalidMessage, PermanentError
from services.invoicer.domain import SUPER_ROLE, code_is_hard_to_guess

TENANT_ROLE = "tenant"
OperatorCommand = CreditGranted | CouponCreated | CouponRedeemed
Doc = dict[str, Any]


def authorize_operator(command: OperatorCommand) -> None:
    """Raise `Forbidden` unless the actor's role may send `command`: `super` for every one,
    `tenant` also for `CouponRedeemed` (the signing API lets a tenant key redeem only for its
    own tenant; the invoicer trusts the signed actor)."""
    allowed = {SUPER_ROLE, TENANT_ROLE} if isinstance(command, CouponRedeemed) else {SUPER_ROLE}
    if command.actor.role not in allowed:
        raise Forbidden(
            f"actor {command.actor.user_id!r} with role {command.actor.role!r} may not send "
            f"{type(command).__name__} (role {' or '.join(sorted(allowed))} required)")


def validate_coupon(command: CouponCreated) -> None:
    """Raise `InvalidMessage("validation_error")` when the code is easy to guess (the rule of
    configured coupons: `domain.validate_config`)."""
    if not code_is_hard_to_guess(command.code):
        raise InvalidMessage("validation_error", f"coupon code {command.code!r} is too easy "
                             "to guess (5 distinct characters from two of a-z, A-Z, 0-9)")


def check_known_tenant(tenant: Doc | None, tenant_id: str) -> Doc:
    """The tenant document; `PermanentError("unknown_tenant")` when None."""
    if tenant is None:
        raise PermanentError("unknown_tenant", f"no configured tenant {tenant_id!r}")
    return tenant


def check_currency(tenant_currency: str, currency: str, what: str) -> None:
    """`PermanentError("currency_mismatch")` unless `currency` is the tenant's current one."""
    if currency != tenant_currency:
        raise PermanentError("currency_mismatch", f"{what} is in {currency}, the tenant is "
                             f"billed in {tenant_currency}")


def same_coupon(existing: Doc, fields: Doc) -> None:
    """`PermanentError("coupon_exists")` when the catalog coupon `existing` differs from
    `fields` (creating a code again with the same fields changes nothing)."""
    differ = sorted(k for k, v in fields.items() if existing.get(k) != v)
    if differ:
        raise PermanentError("coupon_exists", f"coupon {existing['_id']!r} exists with other "
                             f"{', '.join(differ)}")


def check_redeemable(coupon: Doc | None, code: str, tenant_id: str, currency: str) -> Doc:
    """The catalog coupon `code` the tenant (billed in `currency`) may redeem. Raises
    `coupon_unknown`, `currency_mismatch`, or `coupon_exhausted` when `max_redemptions`
    distinct other tenants redeemed it already (a tenant that redeemed it may again)."""
    if coupon is None:
        raise PermanentError("coupon_unknown", f"no coupon {code!r} in the catalog")
    check_currency(currency, coupon["currency"], f"coupon {code!r}")
    limit, tenants = coupon.get("max_redemptions"), list(coupon.get("redeemed_by", []))
    if tenant_id not in tenants and limit is not None and len(tenants) >= limit:
        raise PermanentError("coupon_exhausted", f"coupon {code!r} was redeemed by its "
                             f"maximum of {limit} tenants")
    return coupon
