"""Reading plans files (JSON and YAML) and the invoicer's plan rule, without servers."""

import json
from decimal import Decimal
from pathlib import Path

import pytest

from contracts import Plan
from services.common.errors import InvalidMessage
from services.invoicer.plan_handlers import validate_plan
from services.invoicer.plans_file import PlanOutcome, read_plans_file

PLAN = {"code": "starter", "name": "Starter", "currency": "EUR",
        "billing_frequency": "quarterly", "flat_amount": 1500,
        "limits": [{"meter": "storage_gb", "limit": 0.5}]}


def test_json_lists_and_yaml_mappings_read_the_same(tmp_path: Path) -> None:
    as_json = tmp_path / "plans.json"
    as_json.write_text(json.dumps([PLAN]))
    as_yaml = tmp_path / "plans.yml"
    as_yaml.write_text("plans:\n  - " + json.dumps(PLAN))
    [a] = read_plans_file(as_json)
    [b] = read_plans_file(as_yaml)
    assert a == b and a.limits[0].limit == Decimal("0.5")  # exact, not a binary float


@pytest.mark.parametrize(("content", "needle"), [
    ('{"other": []}', "expected a list of plans"),
    (json.dumps([{**PLAN, "flat_amount": 15.5}]), "plan 1 ('starter'): flat_amount"),
    (json.dumps([PLAN, {**PLAN, "code": "Bad Code"}]), "plan 2 ('Bad Code'): code"),
    (json.dumps([PLAN, PLAN]), "more than once: starter"),
])
def test_bad_files_name_the_plan_and_field(tmp_path: Path, content: str, needle: str) -> None:
    file = tmp_path / "plans.json"
    file.write_text(content)
    with pytest.raises(ValueError) as exc:
        read_plans_file(file)
    assert needle in str(exc.value)


def test_a_price_plan_pricing_a_meter_twice_is_invalid(tmp_path: Path) -> None:
    charge = {"meter": "computations", "model": "per_unit", "unit_price": "0.01"}
    twice = Plan.model_validate({**PLAN, "price_plan": {"charges": [charge, charge]}})
    with pytest.raises(InvalidMessage, match="prices a meter twice"):
        validate_plan(twice)
    validate_plan(Plan.model_validate({**PLAN, "price_plan": {"charges": [charge]}}))
    file = tmp_path / "plans.json"
    file.write_text(json.dumps([twice.model_dump(mode="json")]))
    with pytest.raises(ValueError, match="prices a meter twice"):
        read_plans_file(file)


def test_outcomes_read_as_sentences() -> None:
    assert [PlanOutcome("a", o, v).describe() for o, v in (
        ("created", 1), ("new_version", 3), ("unchanged", 2), ("would_create", 1),
        ("would_add_version", 4))] == [
        "a: created (version 1)", "a: new version 3", "a: unchanged (version 2)",
        "a: would be created", "a: would get version 4"]
