"""The admin console's forms run once: each form carries a one-time token made when the page
is rendered, so posting the same form again (a double click, a reload that re-posts) does
nothing new and says so; the outcome of a form is shown once from the session, never from
the URL (docs/portal.md, "Admin console")."""

import re
from typing import Any

import pytest

from services.api import audit
from services.api.audit import COLLECTION as API_AUDIT
from services.api.routes import writes
from services.invoicer.adapters.store import InvoicerStore
from tests.integration.test_portal_admin import (
    form_data,
    form_values,
    seed,
    sign_in,
)
from tests.integration.test_portal_admin_actions import _payable
from tests.support.api import ApiHarness
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
PAGE = "/portal/admin/tenants/initech"
AGAIN = "submitted already"


async def _audited(api: ApiHarness, action: str) -> list[dict[str, Any]]:
    return await api.ctx.db[API_AUDIT].find({"action": action}).to_list()


async def _shown(api: ApiHarness, posted: Any) -> str:
    """The flash message on the page the 303 leads to."""
    assert posted.status_code == 303, posted.text
    assert "?" not in posted.headers["location"]
    page = (await api.client.get(posted.headers["location"])).text
    found = re.search(r'<p class="alert \w+" role="status" data-testid="flash">([^<]*)</p>',
                      page)
    assert found, page
    return found.group(1)


async def test_the_same_credit_form_posted_twice_grants_one_credit(
    api: ApiHarness, invoicer: InvoicerStore,
) -> None:
    await seed(("initech", {}))
    await sign_in(api, "super")
    page = (await api.client.get(PAGE)).text
    data = form_data(page, "credits", credit_amount="25.00", credit_reason="late delivery")
    first = await api.client.post(f"{PAGE}/credits", data=data)
    assert "Credit granted" in await _shown(api, first)
    second = await api.client.post(f"{PAGE}/credits", data=data)
    assert AGAIN in await _shown(api, second)
    assert len(await _audited(api, "credit.grant")) == 1

    fresh = (await api.client.get(PAGE)).text  # a new page, a new form: a new credit
    third = await api.client.post(f"{PAGE}/credits", data=form_data(
        fresh, "credits", credit_amount="7.00", credit_reason="another"))
    assert "Credit granted" in await _shown(api, third)

    async def both() -> list[int] | None:  # in order: the repeat would have come before
        tenant = await invoicer.tenant("initech")
        balance = (tenant or {}).get("credit_balance") or []
        return [c["amount"] for c in balance] if len(balance) >= 2 else None

    assert await eventually(both, what="two credits applied") == [2500, 700]
    assert len(await _audited(api, "credit.grant")) == 2


async def test_a_reposted_configuration_issue_or_payment_form_does_nothing_again(
    api: ApiHarness,
) -> None:
    await seed(("initech", {"settings": {"auto_generate_invoices": False}}))
    await sign_in(api, "super")
    page = (await api.client.get(PAGE)).text
    config = {**form_values(page, flat_rate_amount="29.00"),
              "form_token": form_data(page, "billing-config")["form_token"]}
    assert "Configuration submitted" in await _shown(
        api, await api.client.post(f"{PAGE}/billing-config", data=config))
    assert AGAIN in await _shown(api, await api.client.post(f"{PAGE}/billing-config",
                                                            data=config))
    assert len(await _audited(api, "billing_config.submit")) == 1

    issue = form_data(page, "invoices", issue_period_end="2013-07-01")
    shown = await _shown(api, await api.client.post(f"{PAGE}/invoices", data=issue))
    number = re.search(r"Invoice (INV-\d{4}-\d{4}) issued", shown)
    assert number, shown
    assert AGAIN in await _shown(api, await api.client.post(f"{PAGE}/invoices", data=issue))

    await _payable(api, number.group(1))
    page = (await api.client.get(PAGE)).text
    pay = form_data(page, "payments", payment_invoice=number.group(1),
                    payment_method="ach", payment_reference="WIRE-1")
    assert "is paid" in await _shown(api, await api.client.post(f"{PAGE}/payments", data=pay))
    assert AGAIN in await _shown(api, await api.client.post(f"{PAGE}/payments", data=pay))
    assert len(await _audited(api, "payment.record")) == 1


async def test_a_refused_form_can_be_corrected_and_sent_with_its_token(
    api: ApiHarness,
) -> None:
    await seed(("initech", {}))
    await sign_in(api, "super")
    page = (await api.client.get(PAGE)).text
    data = form_data(page, "credits", credit_amount="0", credit_reason="x")
    assert (await api.client.post(f"{PAGE}/credits", data=data)).status_code == 422
    corrected = await api.client.post(f"{PAGE}/credits", data={**data, "credit_amount": "1"})
    assert "Credit granted" in await _shown(api, corrected)


async def test_a_form_without_its_token_does_nothing(api: ApiHarness) -> None:
    await seed(("initech", {}))
    await sign_in(api, "super")
    page = (await api.client.get(PAGE)).text
    data = form_data(page, "credits", credit_amount="5.00", credit_reason="x")
    for token in ("", "x" * 500):
        posted = await api.client.post(f"{PAGE}/credits", data={**data, "form_token": token})
        assert "Reload the page" in await _shown(api, posted)
    assert await _audited(api, "credit.grant") == []


async def test_the_outcome_is_shown_once_and_never_from_the_url(api: ApiHarness) -> None:
    await seed(("initech", {}))
    await sign_in(api, "super")
    crafted = await api.client.get(f"{PAGE}?done=credit&ref=call+0800+FRAUD")
    assert crafted.status_code == 200
    assert "FRAUD" not in crafted.text and 'data-testid="flash"' not in crafted.text
    page = (await api.client.get(PAGE)).text
    posted = await api.client.post(f"{PAGE}/credits", data=form_data(
        page, "credits", credit_amount="5.00", credit_reason="x"))
    assert "Credit granted" in await _shown(api, posted)
    assert 'data-testid="flash"' not in (await api.client.get(PAGE)).text  # shown once


@pytest.mark.parametrize("period_end", ["0001-01-01", "9999-12-31"])
async def test_an_issue_date_outside_the_billed_years_is_a_field_message(
    api: ApiHarness, period_end: str,
) -> None:
    await seed(("initech", {"settings": {"auto_generate_invoices": False},
                            "timezone": "Asia/Tokyo"}))
    await sign_in(api, "super")
    page = (await api.client.get(PAGE)).text
    refused = await api.client.post(f"{PAGE}/invoices", data=form_data(
        page, "invoices", issue_period_end=period_end))
    assert refused.status_code == 422
    assert "1970-01-01" in refused.text and 'id="issue_period_end-error"' in refused.text


async def test_a_form_sent_again_after_a_failure_half_way_grants_one_credit(
    api: ApiHarness, invoicer: InvoicerStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await seed(("initech", {}))
    await sign_in(api, "super")

    async def audit_down(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("audit store down")

    page = (await api.client.get(PAGE)).text
    data = form_data(page, "credits", credit_amount="25.00", credit_reason="late delivery")
    monkeypatch.setattr(writes, "record_write", audit_down)
    failed = await api.client.post(f"{PAGE}/credits", data=data)  # published, not audited
    assert failed.status_code == 500
    monkeypatch.setattr(writes, "record_write", audit.record_write)
    again = await api.client.post(f"{PAGE}/credits", data=data)
    assert "Credit granted" in await _shown(api, again)
    fresh = (await api.client.get(PAGE)).text
    await api.client.post(f"{PAGE}/credits", data=form_data(
        fresh, "credits", credit_amount="7.00", credit_reason="another"))

    async def both() -> list[int] | None:  # in order: a second 25.00 would have come before
        tenant = await invoicer.tenant("initech")
        balance = (tenant or {}).get("credit_balance") or []
        return [c["amount"] for c in balance] if len(balance) >= 2 else None

    assert await eventually(both, what="two credits applied") == [2500, 700]
    assert len(await _audited(api, "credit.grant")) == 2
