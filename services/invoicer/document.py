"""The invoicer's part of the invoice document: how the price plan that priced an invoice
priced each usage line (included quantity, tiers), recomputed with the invoicer's own pricing
(`pricing.tier_slices`), for `services.common.invoice_pdf` (docs/invoicing.md, "The invoice
document").

An invoice records the configuration version that priced it (`config_version`); its usage
lines are one per charge of that version's plan, each with the meter's total quantity. A
breakdown is given only when it reproduces the line's amount exactly (rounded once as the
invoice was): a line whose charge cannot be found or does not add up shows no tiers rather
than tiers that contradict its amount.
"""

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Protocol

from contracts import BillingConfigSubmitted, PriceCharge
from services.common.invoice_document import UsagePricing
from services.invoicer.pricing import charge_exact, round_minor, tier_slices

Doc = dict[str, Any]


class ConfigVersions(Protocol):
    """Reads an accepted configuration version (`InvoicerStore` is one)."""

    async def config_version(self, tenant_id: str, version: int) -> BillingConfigSubmitted | None:
        """The configuration `version` of `tenant_id`, or None."""


def charge_pricing(charge: PriceCharge, quantity: Decimal) -> UsagePricing:
    """How `charge` prices `quantity`: its model, included quantity, package and tiers."""
    tiers = tuple(tier_slices(charge, quantity))
    package = charge.model == "package"
    return UsagePricing(model=charge.model, included=charge.included_quantity,
                        package_size=charge.package_size if package else None,
                        package_price=charge.unit_price if package else None, tiers=tiers)


def usage_pricing(charges: Sequence[PriceCharge], doc: Doc) -> dict[str, UsagePricing]:
    """Meter -> `UsagePricing` for each usage line of invoice `doc` that `charges` (the plan
    that priced it) reproduces exactly; the others are left out."""
    by_meter = {c.meter: c for c in charges}
    found: dict[str, UsagePricing] = {}
    for line in doc["line_items"]:
        charge = by_meter.get(line.get("meter") or "")
        if line["kind"] != "usage" or charge is None:
            continue
        quantity = Decimal(str(line["quantity"]))
        try:
            if round_minor(charge_exact(charge, quantity), doc["currency"]) != int(
                    line["amount"]):
                continue
            found[charge.meter] = charge_pricing(charge, quantity)
        except ArithmeticError:  # decimal errors: not the plan that priced this line
            continue
    return found


async def pricing_of(configs: ConfigVersions, doc: Doc) -> dict[str, UsagePricing]:
    """`usage_pricing` with the plan of the configuration version that priced `doc` (empty
    when that version is not recorded)."""
    version = doc.get("config_version")
    config = None if version is None else await configs.config_version(doc["tenant_id"],
                                                                        int(version))
    return {} if config is None else usage_pricing(config.price_plan.charges, doc)
