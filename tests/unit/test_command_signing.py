"""Signed commands: the canonical form, HMAC-SHA256 signatures compared in constant time, and
a key that must be set."""

import hashlib
import hmac
import json
from typing import Any

import pytest

from contracts import BillingConfigSubmitted
from services.common.signing import canonical_json, sign, signature_for, verify

pytestmark = pytest.mark.unit
KEY = b"k" * 32


def config(tenant_id: str, **overrides: Any) -> BillingConfigSubmitted:
    """A valid configuration command for `tenant_id`."""
    return BillingConfigSubmitted.model_validate({
        "tenant_id": tenant_id, "actor": {"user_id": "ops-admin", "role": "super"},
        "settings": {
            "flat_rate_amount": 1000, "currency": "USD", "billing_frequency": "monthly",
            "billing_email": "billing@acme.example", "auto_generate_invoices": True,
            "billing_day_of_month": 1, "payment_due_days": 14, "email_notifications": True},
        "effective_from": "2013-06-01",
        "price_plan": {"charges": [{"meter": "cpu_hours", "model": "per_unit",
                                    "unit_price": "0.50"}]},
        **overrides,
    })


def test_the_canonical_form_is_sorted_compact_utf8_json_without_the_signature() -> None:
    command = sign(config("zürich", tenant_name="Zürich AG"), KEY)
    text = canonical_json(command).decode("utf-8")
    assert "signature" not in text and " " not in text.replace("Zürich AG", "")
    assert "Zürich AG" in text  # UTF-8, not \\u escapes
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert data["event_id"] == command.event_id and "occurred_at" in data
    assert "coupon" not in data  # fields left at their default are not part of the form


def test_the_signature_is_hmac_sha256_of_the_canonical_form_in_hex() -> None:
    command = config("acme")
    expected = hmac.new(KEY, canonical_json(command), hashlib.sha256).hexdigest()
    assert signature_for(command, KEY) == expected
    assert sign(command, KEY).signature == expected


def test_a_signed_command_survives_its_json_round_trip() -> None:
    command = sign(config("acme"), KEY)
    again = type(command).model_validate_json(command.model_dump_json())
    assert verify(again, KEY)


def test_unsigned_forged_and_wrongly_keyed_commands_do_not_verify() -> None:
    signed = sign(config("acme"), KEY)
    assert not verify(config("acme"), KEY)
    body = json.loads(signed.model_dump_json())
    body["settings"]["flat_rate_amount"] = 1
    assert not verify(type(signed).model_validate(body), KEY)
    assert not verify(signed, b"x" * 32)
    assert not verify(signed.model_copy(update={"signature": "zz\u00e9"}), KEY)
    assert verify(signed, KEY)


def test_the_invoicer_names_the_missing_signing_key_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.invoicer.settings import InvoicerSettings, MissingSigningKey

    monkeypatch.delenv("BILLING_COMMAND_SIGNING_KEY", raising=False)
    with pytest.raises(MissingSigningKey, match="BILLING_COMMAND_SIGNING_KEY"):
        InvoicerSettings().signing_key()
    monkeypatch.setenv("BILLING_COMMAND_SIGNING_KEY", "short")
    with pytest.raises(MissingSigningKey, match="at least 32"):
        InvoicerSettings().signing_key()
    monkeypatch.setenv("BILLING_COMMAND_SIGNING_KEY", "s" * 32)
    assert InvoicerSettings().signing_key() == b"s" * 32


@pytest.mark.parametrize("command", [["config", "apply", "tenants.json", "--actor", "ops",
                                      "--role", "super"], ["run", "invoicer"]])
def test_the_commands_that_need_the_key_exit_naming_the_variable(
    command: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    monkeypatch.delenv("BILLING_COMMAND_SIGNING_KEY", raising=False)
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2
    assert "BILLING_COMMAND_SIGNING_KEY is not set" in result.output


def test_the_embedded_stack_gives_each_stack_its_own_persistent_signing_key(tmp_path: Any) -> None:
    from services.devstack.stack import Component, EmbeddedStack, StackState

    components = {name: Component(name, 1, port, [name], "log")
                  for name, port in (("kafka", 1), ("mongodb", 2), ("smtp", 3))}
    state = StackState(components=components)
    key = state.env(tmp_path)["BILLING_COMMAND_SIGNING_KEY"]
    assert len(key) >= 32 and key != StackState().command_signing_key
    stack = EmbeddedStack(tmp_path)
    stack._save(state)
    assert stack.load().command_signing_key == key
    assert f"BILLING_COMMAND_SIGNING_KEY={key}" in (tmp_path / "dev.env").read_text()
