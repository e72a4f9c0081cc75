"""The billing customer's details as the portal's form and the API give them."""

import pytest
from pydantic import ValidationError

from services.payments.customers import BillingCustomerDetails, from_customer

pytestmark = pytest.mark.unit


def test_blank_optional_fields_are_none_and_the_country_is_upper_case() -> None:
    details = BillingCustomerDetails(name=" Acme ", email="billing@acme.example",
                                     address_line1="", city="  ", country="de", tax_id="")
    assert (details.name, details.address_line1, details.city, details.country,
            details.tax_id) == ("Acme", None, None, "DE", None)


@pytest.mark.parametrize("fields", [
    {"name": "", "email": "billing@acme.example"},
    {"name": "Acme", "email": "not an email"},
    {"name": "Acme", "email": "billing@acme.example", "country": "Germany"},
    {"name": "Acme", "email": "billing@acme.example", "vat": "DE1"},
])
def test_missing_or_malformed_details_are_refused(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        BillingCustomerDetails.model_validate(fields)


def test_the_stored_copy_reads_back_and_none_before_the_first_save() -> None:
    details = BillingCustomerDetails(name="Acme", email="billing@acme.example", country="DE")
    stored = {"customer_id": "cus_1", "billing": details.model_dump(mode="json")}
    assert from_customer(stored) == details
    assert from_customer({"customer_id": "cus_1"}) is None
    assert from_customer(None) is None
