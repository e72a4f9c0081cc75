"""The plan catalog's operator commands (docs/plans.md, "Plans").

    billing plans apply FILE [--dry-run] [--actor ID] [--role ROLE]
    billing plans list [--json]
"""

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from contracts.money import to_major_units
from services.invoicer.adapters.plans import PlanVersion, current_plans
from services.invoicer.plans_file import PlansRefused, apply_plans, read_plans_file
from services.invoicer.reports import open_store
from services.invoicer.settings import InvoicerSettings, MissingSigningKey


def plans_apply(
    file: Annotated[Path, typer.Argument(help="JSON or YAML list of plans")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only say what would change")]
    = False,
    actor: Annotated[str, typer.Option("--actor", help="operator user id")] = "ops-admin",
    role: Annotated[str, typer.Option("--role", help="operator role (super may)")] = "super",
) -> None:
    """Submit each plan of FILE whose content differs from its newest version (signed with
    BILLING_COMMAND_SIGNING_KEY), wait until the invoicer stored it, and print per plan:
    created, new version N, or unchanged."""
    try:
        plans = read_plans_file(file)
        outcomes = asyncio.run(apply_plans(InvoicerSettings(), plans, actor_id=actor,
                                           role=role, dry_run=dry_run))
    except (ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except MissingSigningKey as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except (PlansRefused, TimeoutError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for outcome in outcomes:
        typer.echo(outcome.describe())


def _row(found: PlanVersion) -> dict[str, object]:
    plan = found.plan
    return {"code": plan.code, "version": found.version, "name": plan.name,
            "currency": plan.currency, "billing_frequency": plan.billing_frequency,
            "flat_amount": plan.flat_amount,
            "limits": [lim.model_dump(mode="json") for lim in plan.limits]}


def plans_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The newest version of every plan: code, version, name, flat amount per period, limits
    (`--json`: amounts in minor units)."""
    async def go() -> list[PlanVersion]:
        async with open_store(InvoicerSettings()) as store:
            return await current_plans(store.db)

    found = asyncio.run(go())
    if as_json:
        typer.echo(json.dumps([_row(p) for p in found], indent=2))
        return
    for version in found:
        plan = version.plan
        limits = ", ".join(f"{lim.meter} <= {lim.limit}{' (hard)' if lim.hard else ''}"
                           for lim in plan.limits) or "no limits"
        typer.echo(f"{plan.code} v{version.version}  {plan.name}  "
                   f"{to_major_units(plan.flat_amount, plan.currency)} {plan.currency} "
                   f"{plan.billing_frequency}  {limits}")


def register(app: typer.Typer) -> None:
    """Add the `plans` command group to the root `app`."""
    plans_app = typer.Typer(help="The plan catalog: apply a plans file, list plans.")
    app.add_typer(plans_app, name="plans")
    plans_app.command("apply")(plans_apply)
    plans_app.command("list")(plans_list)
