"""Contracts: every event survives a JSON round trip; bad payloads fail with a clear message."""

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from contracts import (
    ALL_EVENTS,
    Actor,
    BillingConfigApplied,
    BillingConfigSubmitted,
    BillingSettings,
    CouponCreated,
    CouponRedeemed,
    CreditGranted,
    DeadLettered,
    InvoiceIssued,
    InvoiceStatusChanged,
    LineItem,
    NotificationFailed,
    NotificationSent,
    PaymentDuplicated,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    Plan,
    PlanLimit,
    PlanSubmitted,
    StripeEventReceived,
    SubscriptionChanged,
    SubscriptionCheckoutCompleted,
    SubscriptionRequested,
    UsageLimitsChanged,
    UsageLimitWindow,
    UsageRecorded,
    UsageThresholdReached,
)
from contracts.base import Contract
from contracts.export import asyncapi_document, export
from contracts.money import minor_unit_exponent, to_major_units, to_minor_units
from contracts.plans import threshold_event_id

pytestmark = pytest.mark.unit
T0 = datetime(2013, 7, 1, tzinfo=UTC)
SETTINGS = BillingSettings(
    flat_rate_amount=4900,
    currency="USD",
    billing_frequency="monthly",
    billing_email="billing@acme.example",
    auto_generate_invoices=True,
    billing_day_of_month=1,
    payment_due_days=14,
    email_notifications=True,
)
INVOICE = dict(
    invoice_id="acme:2013-07",
    invoice_number="INV-2013-0001",
    tenant_id="acme",
    amount=4900,
    currency="USD",
    issue_date=date(2013, 7, 1),
    due_date=date(2013, 7, 15),
    period_start=T0,
    period_end=T0,
    billing_email="billing@acme.example",
    email_notifications=True,
)


def usage_payload(**overrides: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "specversion": "1.0",
        "id": "399-1372629804-cpu_hours",
        "source": "bitbrains",
        "type": "billing.usage",
        "subject": "acme",
        "time": "2013-06-30T22:03:24Z",
        "data": {"meter": "cpu_hours", "quantity": "0.006278", "service": "web"},
    }
    payload.update(overrides)
    return payload


#: Tenant facts other services project (on `billing.tenant.v1`).
TENANT_EXAMPLES: list[Contract] = [
    BillingConfigApplied(
        tenant_id="acme", config_version=3, submitted_at=T0,
        billing_email="billing@acme.example", email_notifications=False,
    ),
]
#: Operator commands besides the configuration (on `billing.tenant-config.v1`).
COMMAND_EXAMPLES: list[Contract] = [
    CreditGranted(tenant_id="acme", credit_id="cr-1", amount=500, currency="EUR",
                  reason="outage on 3 June", actor=Actor(user_id="key:ops", role="super")),
    CouponCreated(code="Welcome2013x", amount_off=1000, currency="EUR", duration="repeating",
                  duration_in_periods=3, max_redemptions=10,
                  actor=Actor(user_id="key:ops", role="super")),
    CouponRedeemed(tenant_id="acme", code="Welcome2013x",
                   actor=Actor(user_id="key:acme", role="tenant")),
]
EXAMPLES: list[Contract] = [
    UsageRecorded.model_validate(usage_payload()),
    BillingConfigSubmitted(
        tenant_id="acme",
        actor=Actor(user_id="ops-admin", role="super"),
        settings=SETTINGS,
        effective_from=date(2013, 6, 1),
    ),
    InvoiceIssued(
        **INVOICE,
        config_version=1,
        line_items=(
            LineItem(kind="flat_fee", description="Flat fee", amount=4900),
            LineItem(
                kind="usage",
                description="CPU",
                meter="cpu_hours",
                quantity=Decimal("12.5"),
                unit_price=Decimal("0.04"),
                amount=50,
            ),
            LineItem(kind="coupon", description="Coupon", amount=-50),
        ),
    ),
    InvoiceStatusChanged(
        **INVOICE,
        previous_status="pending_payment",
        status="paid",
        paid_date=date(2013, 7, 2),
        payment_reference="pi_1",
        payment_method="card visa 4242",
    ),
    PaymentSucceeded(
        invoice_id="i",
        invoice_number="INV-2013-0001",
        tenant_id="acme",
        amount=4900,
        currency="USD",
        payment_reference="pi_1",
        payment_method="card visa 4242",
        paid_at=T0,
    ),
    PaymentFailed(
        invoice_id="i",
        invoice_number="INV-2013-0001",
        tenant_id="acme",
        amount=1,
        currency="EUR",
        decline_code="generic_decline",
        failure_message="declined",
        attempt=1,
    ),
    StripeEventReceived(
        event_id="evt_1",
        stripe_event_type="payment_intent.succeeded",
        payload={"id": "evt_1", "data": {"object": {"id": "pi_1"}}},
    ),
    NotificationSent(
        notification_id="n",
        kind="receipt",
        tenant_id="acme",
        invoice_id="i",
        invoice_number="INV-2013-0001",
        recipient="a@b.example",
        subject="s",
        message_id="<m@x>",
    ),
    NotificationFailed(
        notification_id="n",
        kind="overdue",
        tenant_id="acme",
        invoice_id="i",
        invoice_number="INV-2013-0001",
        recipient="a@b.example",
        reason="550",
    ),
    DeadLettered(
        service="usage_collector",
        topic="billing.usage.v1",
        partition=0,
        offset=7,
        original="{",
        reason="invalid_json",
    ),
    PaymentDuplicated(
        invoice_id="i", invoice_number="INV-2013-0001", tenant_id="acme", amount=4900,
        currency="USD", payment_reference="pi_2", settled_by="WIRE-1", received_at=T0,
    ),
    PaymentRefunded(
        invoice_id="i", invoice_number="INV-2013-0001", tenant_id="acme", refund_id="re_1",
        amount=900, currency="USD", payment_reference="pi_1", refunded_total=900,
        refunded_at=T0,
    ),
]


PLAN = Plan(
    code="team", name="Team", currency="USD", billing_frequency="monthly", flat_amount=4900,
    limits=(PlanLimit(meter="computations", limit=Decimal(1000), hard=True),),
)
EXAMPLES += [
    PlanSubmitted(plan=PLAN, actor=Actor(user_id="ops", role="super")),
    SubscriptionRequested(tenant_id="acme", action="start", plan_code="team",
                          billing_email="billing@acme.example",
                          actor=Actor(user_id="key_1", role="tenant")),
    SubscriptionCheckoutCompleted(tenant_id="acme", checkout_session_id="cs_test_1",
                                  plan_code="team", plan_version=1, completed_at=T0),
    SubscriptionChanged(tenant_id="acme", change="started", status="active", plan_code="team",
                        plan_version=1, effective_at=T0),
    UsageLimitsChanged(tenant_id="acme", version=1, windows=(UsageLimitWindow(
        period_start=T0, period_end=datetime(2013, 8, 1, tzinfo=UTC), limits=PLAN.limits),)),
    UsageThresholdReached(
        event_id=threshold_event_id("acme", "computations", T0.isoformat(), 80),
        tenant_id="acme", meter="computations", period_start=T0,
        period_end=datetime(2013, 8, 1, tzinfo=UTC), threshold_percent=80,
        limit=Decimal(1000), used=Decimal(800), hard=True),
]


def test_every_event_has_an_example() -> None:
    assert {type(e) for e in EXAMPLES + TENANT_EXAMPLES + COMMAND_EXAMPLES} == set(ALL_EVENTS)


def test_plan_codes_and_subscription_commands_are_checked() -> None:
    with pytest.raises(ValidationError, match="plan code"):
        Plan(code="Team Plan", name="x", currency="USD", billing_frequency="monthly",
             flat_amount=1)
    with pytest.raises(ValidationError, match="one limit per meter"):
        Plan(code="t1", name="x", currency="USD", billing_frequency="monthly", flat_amount=1,
             limits=(PlanLimit(meter="m", limit=Decimal(1)), PlanLimit(meter="m",
                                                                      limit=Decimal(2))))
    with pytest.raises(ValidationError, match="plan_code is required"):
        SubscriptionRequested(tenant_id="a", action="change",
                              actor=Actor(user_id="u", role="super"))
    assert threshold_event_id("a", "m", "p", 80) == threshold_event_id("a", "m", "p", 80)
    assert threshold_event_id("a", "m", "p", 80) != threshold_event_id("a", "m", "p", 100)


@pytest.mark.parametrize("event", EXAMPLES + TENANT_EXAMPLES + COMMAND_EXAMPLES,
                         ids=lambda e: type(e).__name__)
def test_every_event_survives_a_json_round_trip(event: Contract) -> None:
    text = event.model_dump_json()
    again = type(event).model_validate_json(text)
    assert again == event
    assert again.event_id and again.occurred_at.tzinfo is not None  # type: ignore[attr-defined]
    assert again.schema_version == 1  # type: ignore[attr-defined]


def test_usage_event_exposes_the_common_event_fields() -> None:
    event = UsageRecorded.model_validate(usage_payload())
    assert event.event_id == "bitbrains/399-1372629804-cpu_hours"
    assert event.occurred_at == datetime(2013, 6, 30, 22, 3, 24, tzinfo=UTC)
    assert event.data.quantity == Decimal("0.006278")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({k: v for k, v in usage_payload().items() if k != "subject"}, "subject"),
        (usage_payload(extra_field=1), "Extra inputs are not permitted"),
        (
            usage_payload(data={"meter": "cpu_hours", "quantity": "-1", "service": "web"}),
            "greater than or equal to 0",
        ),
        (usage_payload(data={"meter": "cpu_hours", "quantity": "NaN", "service": "web"}), "finite"),
        (usage_payload(time="2013-06-30T22:03:24"), "timezone"),
        (usage_payload(specversion="0.3"), "specversion"),
    ],
    ids=[
        "missing-subject",
        "extra-field",
        "negative-quantity",
        "nan-quantity",
        "naive-time",
        "wrong-specversion",
    ],
)
def test_bad_usage_events_fail_with_a_clear_message(
    payload: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as err:
        UsageRecorded.model_validate_json(json.dumps(payload))
    assert message.lower() in str(err.value).lower()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amount": -1}, "greater than or equal to 0"),
        ({"amount": 49.0}, "valid integer"),
        ({"currency": "XYZ"}, "unknown ISO 4217 currency"),
        ({"issue_date": "not-a-date"}, "date"),
        ({"period_start": "2013-07-01T00:00:00"}, "timezone"),
        ({"unexpected": True}, "Extra inputs are not permitted"),
        ({"invoice_number": "2013-1"}, "pattern"),
    ],
    ids=[
        "negative-amount",
        "float-money",
        "bad-currency",
        "bad-date",
        "naive-datetime",
        "extra-field",
        "bad-number",
    ],
)
def test_bad_invoice_payloads_fail_with_a_clear_message(
    change: dict[str, object], message: str
) -> None:
    payload = json.loads(EXAMPLES[2].model_dump_json()) | change
    with pytest.raises(ValidationError) as err:
        InvoiceIssued.model_validate_json(json.dumps(payload))
    assert message.lower() in str(err.value).lower()


def test_a_missing_field_is_named_in_the_error() -> None:
    payload = json.loads(EXAMPLES[4].model_dump_json())
    del payload["payment_reference"]
    with pytest.raises(ValidationError, match="payment_reference"):
        PaymentSucceeded.model_validate_json(json.dumps(payload))


def test_billing_day_outside_1_to_31_is_refused() -> None:
    for day in (0, 32):
        with pytest.raises(ValidationError, match="billing_day_of_month"):
            BillingSettings.model_validate(SETTINGS.model_dump() | {"billing_day_of_month": day})


def test_events_are_frozen() -> None:
    with pytest.raises(ValidationError):
        EXAMPLES[4].amount = 1  # type: ignore[attr-defined]


def test_minor_units_follow_the_currency_exponent() -> None:
    assert minor_unit_exponent("USD") == 2 and minor_unit_exponent("JPY") == 0
    assert minor_unit_exponent("KWD") == 3
    assert to_minor_units("49.00", "USD") == 4900
    assert to_minor_units("2500.00", "KES") == 250000
    assert to_major_units(4900, "USD") == Decimal("49.00")
    with pytest.raises(ValueError, match="more digits"):
        to_minor_units("1.005", "USD")


def test_contracts_export_writes_a_schema_per_event_and_an_asyncapi_document(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = export(tmp_path)
    names = {p.stem for p in paths if p.parent.name == "schemas"}
    assert names == {cls.__name__ for cls in ALL_EVENTS}
    doc = asyncapi_document()
    addresses = {c["address"] for c in doc["channels"].values()}
    assert "billing.usage.v1" in addresses and "billing.dead-letter.v1" in addresses
    assert json.loads((tmp_path / "asyncapi.json").read_text())["asyncapi"] == "3.0.0"


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [("IQD", 3), ("LAK", 2), ("RSD", 2), ("JPY", 0), ("KES", 2), ("USD", 2), ("BHD", 3)],
)
def test_minor_unit_exponents_are_the_iso_4217_ones_not_cldr_display_digits(
    currency: str, exponent: int
) -> None:
    assert minor_unit_exponent(currency) == exponent


def test_amounts_convert_with_iso_4217_exponents_where_cldr_differs() -> None:
    assert to_minor_units("1234.567", "IQD") == 1234567
    assert to_minor_units("10.50", "LAK") == 1050
    assert to_minor_units("99.99", "RSD") == 9999
    assert to_major_units(1050, "LAK") == Decimal("10.50")


def test_a_code_without_a_minor_unit_is_not_a_billing_currency() -> None:
    with pytest.raises(ValueError, match="XAU"):
        minor_unit_exponent("XAU")
    with pytest.raises(ValueError, match="ZZZ"):
        to_minor_units("1", "ZZZ")
