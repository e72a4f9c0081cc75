"""`billing plans apply` and `billing plans list` with the invoicer worker running: a plans
file creates plans, applying it again changes nothing, a changed plan gets a new version, a
dry run submits nothing, bad files and refused roles fail with the reason."""

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from services.cli import app
from services.invoicer.adapters.plans import PLANS
from services.invoicer.settings import InvoicerSettings
from tests.integration.test_invoicer_support import (  # the settings and worker fixtures
    open_store,
    worker_fixture,  # noqa: F401
    worker_settings_fixture,  # noqa: F401
)

pytestmark = pytest.mark.integration
YAML = """
plans:
  - code: starter
    name: Starter
    currency: USD
    billing_frequency: monthly
    flat_amount: 2900
    price_plan:
      charges:
        - {meter: computations, model: per_unit, unit_price: "0.01"}
    limits:
      - {meter: computations, limit: 1000, hard: true}
  - code: pro
    name: Pro
    currency: USD
    billing_frequency: monthly
    flat_amount: 9900
    limits:
      - {meter: computations, limit: 10000}
"""


async def cli(*args: str) -> Result:
    """Run `billing ARGS` in a thread, so this test's loop keeps running the worker."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def test_apply_creates_then_changes_nothing_then_adds_a_version(
    settings: InvoicerSettings, worker: None, tmp_path: Path,
) -> None:
    file = tmp_path / "plans.yaml"
    file.write_text(YAML, encoding="utf-8")
    dry = await cli("plans", "apply", str(file), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines() == ["starter: would be created", "pro: would be created"]
    async with open_store(settings) as store:
        assert await store.db[PLANS].count_documents({}) == 0

    first = await cli("plans", "apply", str(file))
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == ["starter: created (version 1)",
                                         "pro: created (version 1)"]
    again = await cli("plans", "apply", str(file))
    assert again.output.splitlines() == ["starter: unchanged (version 1)",
                                         "pro: unchanged (version 1)"]

    file.write_text(YAML.replace("flat_amount: 9900", "flat_amount: 12900"), encoding="utf-8")
    changed = await cli("plans", "apply", str(file))
    assert changed.output.splitlines() == ["starter: unchanged (version 1)",
                                           "pro: new version 2"]
    listed = await cli("plans", "list", "--json")
    assert [(p["code"], p["version"], p["flat_amount"]) for p in json.loads(listed.output)] == [
        ("pro", 2, 12900), ("starter", 1, 2900)]
    text = (await cli("plans", "list")).output
    assert "starter v1  Starter  29.00 USD monthly  computations <= 1000 (hard)" in text


async def test_a_bad_file_or_a_refused_role_fails_with_the_reason(
    settings: InvoicerSettings, worker: None, tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"code": "x y", "name": "X", "currency": "USD",
                                "billing_frequency": "monthly", "flat_amount": 1}]))
    result = await cli("plans", "apply", str(bad))
    assert result.exit_code == 1 and "plan 1 ('x y'): code" in result.output

    twice = tmp_path / "twice.yaml"
    twice.write_text(YAML.replace("code: pro", "code: starter"), encoding="utf-8")
    result = await cli("plans", "apply", str(twice))
    assert result.exit_code == 1 and "more than once: starter" in result.output

    good = tmp_path / "plans.yaml"
    good.write_text(YAML, encoding="utf-8")
    result = await cli("plans", "apply", str(good), "--role", "viewer")
    assert result.exit_code == 1 and "forbidden" in result.output
    async with open_store(settings) as store:
        assert await store.db[PLANS].count_documents({}) == 0
