"""`billing payments setup` against the Stripe fake: Stripe's test payment methods behave as in
Stripe test mode, and a card declined when attached is reported, not stored."""

from typing import Any

import pytest
from pymongo import MongoClient
from typer.testing import CliRunner

from services.cli import app
from services.payments.adapters.mongo_store import CUSTOMERS
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake

pytestmark = pytest.mark.integration


@pytest.fixture
def setup_command(billing_env: dict[str, str], stripe_fake: StripeFake,
                  monkeypatch: pytest.MonkeyPatch) -> Any:
    """Runs `billing payments setup --tenant T --payment-method PM` against the fake; returns
    (exit code, output, the tenant's stored customer document or None)."""
    monkeypatch.setenv("BILLING_STRIPE_API_BASE", stripe_fake.base_url)
    monkeypatch.setenv("BILLING_STRIPE_API_KEY", stripe_fake.api_key)
    client: MongoClient[dict[str, Any]] = MongoClient(billing_env["BILLING_MONGO_URI"])
    customers = client[billing_env["BILLING_MONGO_DB"]][CUSTOMERS]

    def run(tenant: str, payment_method: str) -> tuple[int, str, dict[str, Any] | None]:
        result = CliRunner().invoke(app, ["payments", "setup", "--tenant", tenant,
                                          "--payment-method", payment_method])
        return result.exit_code, result.output, customers.find_one({"_id": tenant})

    yield run
    client.drop_database(billing_env["BILLING_MONGO_DB"])
    client.close()


@pytest.mark.parametrize(("token", "decline_code"), [
    ("pm_card_chargeDeclined", "generic_decline"),
    ("pm_card_visa_chargeDeclined", "generic_decline"),
    ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
])
def test_setup_with_a_card_declined_on_attach_exits_non_zero_and_stores_no_method(
    setup_command: Any, token: str, decline_code: str
) -> None:
    code, output, stored = setup_command("globex", token)
    assert code == 1, output
    assert "card_declined" in output and decline_code in output and token in output
    assert "Traceback" not in output
    assert stored is None or stored["payment_method_id"] is None


def test_a_declined_replacement_keeps_the_tenants_working_method(setup_command: Any) -> None:
    assert setup_command("acme", "pm_card_visa")[0] == 0
    code, _, stored = setup_command("acme", "pm_card_chargeDeclined")
    assert code == 1
    assert stored is not None and stored["payment_method"] == "card visa 4242"


def test_setup_with_pm_card_charge_customer_fail_attaches_the_card(setup_command: Any) -> None:
    code, output, stored = setup_command("globex", "pm_card_chargeCustomerFail")
    assert code == 0, output
    assert "globex: default payment method card visa 0341" in output
    assert stored is not None and stored["payment_method_id"].startswith("pm_")
