"""The tenant ledger and the coupon redemption counts, as the issuing transaction reads and
moves them (docs/invoicing.md, "Reductions larger than the invoice", "Coupon redemptions").

In the tenant document (`invoicer_tenants`):

    ledger_rev      int   +1 with every invoice, credit grant and redemption; the issuing
                          update filter checks it
    coupons         [{code, redemptions}]   invoices of this tenant each code reduced
    credits_used    [{credit_id, used}]     minor units taken from each credit
    credit_balance  [{credit_id, amount, granted_at, reason, source_invoice, meter,
                      period_label, currency}]  credits carried from negative adjustments,
                    and credits granted by an operator ({credit_id, amount, granted_at, reason,
                    currency, granted_by, event_id}: `adapters/catalog.py`)
    redeemed_coupon {code, amount_off, duration, duration_in_periods, max_redemptions,
                     currency, redeemed_at, event_id}  the catalog coupon the tenant redeemed
                    last (`coupon_in_effect`)

The redemption counts of coupon codes over all tenants are kept by `adapters/ledger.py`.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts import BillingConfigSubmitted, Coupon
from services.invoicer.pricing import CreditBalance, Draft

Doc = dict[str, Any]


class LedgerMoved(RuntimeError):
    """The tenant's ledger or a coupon's redemption count changed between reading and writing
    it, or the count is not created yet: the transaction aborts and the issue is retried."""


@dataclass
class Ledger:
    """A tenant's ledger as read in the issuing transaction."""

    rev: int
    coupon_uses: dict[str, int] = field(default_factory=dict)
    credits_used: dict[str, int] = field(default_factory=dict)
    balance: list[Doc] = field(default_factory=list)

    @classmethod
    def of(cls, tenant: Doc) -> "Ledger":
        """The ledger held in a tenant document."""
        return cls(
            rev=tenant["ledger_rev"],
            coupon_uses={c["code"]: c["redemptions"] for c in tenant.get("coupons", [])},
            credits_used={c["credit_id"]: c["used"] for c in tenant.get("credits_used", [])},
            balance=list(tenant.get("credit_balance", [])),
        )

    def credits(self, config: BillingConfigSubmitted) -> list[CreditBalance]:
        """Remaining balances (minor units) of the configured credits and of the credits
        carried from negative adjustments, each applied from its `granted_at`. A carried credit
        only reduces invoices in its own currency (docs/billing-periods.md, "Currency changes")."""
        currency = config.settings.currency
        granted = [(c.credit_id, c.amount, c.granted_at, c.reason) for c in config.credits]
        granted += [(b["credit_id"], int(b["amount"]), b["granted_at"], b["reason"])
                    for b in self.balance if b.get("currency", currency) == currency]
        return [CreditBalance(i, amount - self.credits_used.get(i, 0), at, reason)
                for i, amount, at, reason in granted]

    def after(
        self, draft: Draft, coupon: Coupon | None, inv_id: str, number: str, issued_at: datetime,
        currency: str | None = None,
    ) -> Doc:
        """The ledger fields to `$set` once `draft` is issued as `number`: coupon use, credits
        taken, and each carried credit added to the balance with its reason."""
        uses, used = dict(self.coupon_uses), dict(self.credits_used)
        if draft.coupon_applied and coupon is not None:
            uses[coupon.code] = uses.get(coupon.code, 0) + 1
        for credit_id, take in draft.credits_used.items():
            used[credit_id] = used.get(credit_id, 0) + take
        balance = self.balance + [
            {"credit_id": f"carried:{inv_id}:{c.meter}:{c.period_label}", "amount": c.amount,
             "granted_at": issued_at, "source_invoice": number, "meter": c.meter,
             "period_label": c.period_label, **({"currency": currency} if currency else {}),
             "reason": f"late usage correction of {c.meter} for {c.period_label} larger than "
                       f"invoice {number}"}
            for c in draft.carried
        ]
        return {"coupons": [{"code": k, "redemptions": v} for k, v in uses.items()],
                "credits_used": [{"credit_id": k, "used": v} for k, v in used.items()],
                "credit_balance": balance}


def coupon_in_effect(
    config: BillingConfigSubmitted, tenant: Doc, issued_at: datetime
) -> BillingConfigSubmitted:
    """`config` with the coupon that reduces an invoice issued at `issued_at`: the tenant's
    redeemed catalog coupon (`redeemed_coupon` on the tenant document) when it was redeemed
    before `issued_at` and is in the configuration's currency, replacing the configuration's
    own coupon; otherwise `config` unchanged (docs/configuration.md, "Credits and coupons").
    The redemption counts then work for it as for a configured coupon, by its code."""
    redeemed = tenant.get("redeemed_coupon")
    if (redeemed is None or redeemed["redeemed_at"] >= issued_at
            or redeemed["currency"] != config.settings.currency):
        return config
    coupon = Coupon(code=redeemed["code"], amount_off=int(redeemed["amount_off"]),
                    duration=redeemed["duration"],
                    duration_in_periods=redeemed.get("duration_in_periods"),
                    max_redemptions=redeemed.get("max_redemptions"))
    return config.model_copy(update={"coupon": coupon})
