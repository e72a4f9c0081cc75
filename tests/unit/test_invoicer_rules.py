"""Invoicer rules without I/O: roles, configuration checks, status transitions, and reading a
tenants file (major-unit strings to minor units, a fresh event id per submission, stable
credit ids)."""

import json
from pathlib import Path

import pytest

from contracts import Actor
from services.common.errors import Forbidden, InvalidMessage
from services.invoicer.domain import authorize, invoice_number, next_status, validate_config
from services.invoicer.tenants_file import read_tenants_file

pytestmark = pytest.mark.unit
SUPER = Actor(user_id="ops-admin", role="super")


def test_payment_outcomes_never_move_an_invoice_backwards() -> None:
    assert next_status("pending_payment", "succeeded") == "paid"
    assert next_status("pending_payment", "failed") == "failed"
    assert next_status("failed", "succeeded") == "paid"
    assert next_status("overdue", "succeeded") == "paid"
    assert next_status("overdue", "failed") == "overdue"
    assert next_status("paid", "failed") == "paid"
    assert next_status("paid", "succeeded") == "paid"


def test_invoice_numbers_carry_the_year_and_a_four_digit_sequence() -> None:
    assert invoice_number(2013, 7) == "INV-2013-0007"
    assert invoice_number(2014, 12345) == "INV-2014-12345"


def test_the_shared_tenants_file_becomes_commands_in_minor_units(shared_data: Path) -> None:
    commands = {c.tenant_id: c for c in read_tenants_file(shared_data / "tenants.json", SUPER)}
    assert commands["acme"].settings.flat_rate_amount == 4900
    assert commands["initech"].settings.flat_rate_amount == 250000
    assert commands["hooli"].coupon is not None and commands["hooli"].coupon.amount_off == 500
    [credit] = commands["acme"].credits
    assert credit.amount == 2500 and credit.granted_by == "ops-admin"
    again = {c.tenant_id: c for c in read_tenants_file(shared_data / "tenants.json", SUPER)}
    assert again["acme"].credits[0].credit_id == credit.credit_id
    for command in commands.values():
        authorize(command)
        validate_config(command)


def test_only_the_super_role_may_configure_billing(shared_data: Path, tmp_path: Path) -> None:
    [command, *_] = read_tenants_file(shared_data / "tenants.json",
                                      Actor(user_id="eve", role="admin"))
    with pytest.raises(Forbidden) as refused:
        authorize(command)
    assert refused.value.reason == "forbidden" and "eve" in refused.value.detail


def test_an_easy_coupon_code_and_a_twice_priced_meter_are_refused(
    shared_data: Path, tmp_path: Path,
) -> None:
    data = json.loads((shared_data / "tenants.json").read_text())
    hooli = next(t for t in data["tenants"] if t["tenant_id"] == "hooli")
    hooli["coupon"]["code"] = "aaaaaaaa"
    hooli["price_plan"]["charges"].append(hooli["price_plan"]["charges"][0])
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": [hooli]}))
    [command] = read_tenants_file(path, SUPER)
    with pytest.raises(InvalidMessage, match="twice"):
        validate_config(command)
    hooli["price_plan"]["charges"].pop()
    path.write_text(json.dumps({"tenants": [hooli]}))
    with pytest.raises(InvalidMessage, match="guess"):
        validate_config(read_tenants_file(path, SUPER)[0])


def test_every_reading_of_a_tenants_file_is_a_new_submission_with_its_own_id(
    shared_data: Path,
) -> None:
    first = read_tenants_file(shared_data / "tenants.json", SUPER)
    again = read_tenants_file(shared_data / "tenants.json", SUPER)
    ids = [c.event_id for c in first + again]
    assert len(set(ids)) == len(ids)
    assert [c.credits for c in first] == [c.credits for c in again]
