"""Configuration versions on the real database: each submission is a version, versions follow
submission order, and each records when it was submitted."""

from datetime import datetime, timedelta

import pytest

from contracts import BillingConfigApplied
from contracts.base import utc_now
from services.common.errors import PermanentError
from services.common.settings import CommonSettings
from tests.integration.test_invoicer_support import config, open_store

pytestmark = pytest.mark.integration


async def test_a_configuration_submitted_before_the_current_version_is_refused_as_superseded(
    common_settings: CommonSettings,
) -> None:
    from services.invoicer.handlers import apply_config

    now = utc_now()
    newer = config("acme", occurred_at=now, settings={"billing_email": "new@acme.example"})
    older = config("acme", occurred_at=now - timedelta(minutes=5),
                   settings={"billing_email": "old@acme.example"})
    async with open_store(common_settings) as store:
        assert await apply_config(store, newer) == 1
        with pytest.raises(PermanentError) as refused:
            await apply_config(store, older)
        assert refused.value.reason == "superseded"
        tenant = await store.tenant("acme")
        assert tenant is not None and tenant["version"] == 1
        assert tenant["config"]["settings"]["billing_email"] == "new@acme.example"
        [audit] = await store.audit.find({}).to_list()
        assert (audit["_id"], audit["why"]["reason"]) == (older.event_id, "superseded")
        assert await store.submission_outcomes([newer.event_id, older.event_id, "x"]) == {
            newer.event_id: "applied", older.event_id: "superseded"}


async def test_each_version_records_its_submission_instant_and_event_id(
    common_settings: CommonSettings,
) -> None:
    from services.invoicer.handlers import apply_config

    first, second = config("acme"), config("acme")
    async with open_store(common_settings) as store:
        assert [await apply_config(store, c) for c in (first, second, first)] == [1, 2, None]
        versions = await store.configs.find({}).sort("version").to_list()
        assert [(v["event_id"], v["submitted_at"]) for v in versions] == [
            (first.event_id, ms(first.occurred_at)), (second.event_id, ms(second.occurred_at))]


def ms(instant: datetime) -> datetime:
    """`instant` at MongoDB's precision (milliseconds)."""
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)


async def test_each_accepted_version_puts_its_contact_settings_in_the_outbox(
    common_settings: CommonSettings,
) -> None:
    from services.invoicer.handlers import apply_config
    from services.invoicer.names import OUTBOX

    first = config("acme")
    second = config("acme", settings={"billing_email": "ap@acme.example",
                                      "email_notifications": False})
    async with open_store(common_settings) as store:
        for command in (first, second, first):
            await apply_config(store, command)
        entries = await store.db[OUTBOX].find({}).sort("seq").to_list()
    assert [(e["_id"], e["type"], e["topic"], e["key"]) for e in entries] == [
        ("config-applied:acme:1", "BillingConfigApplied", "billing.tenant.v1", "acme"),
        ("config-applied:acme:2", "BillingConfigApplied", "billing.tenant.v1", "acme")]
    applied = [BillingConfigApplied.model_validate_json(e["payload"]) for e in entries]
    assert [(a.config_version, a.billing_email, a.email_notifications) for a in applied] == [
        (1, "billing@acme.example", True), (2, "ap@acme.example", False)]
    assert applied[1].submitted_at == second.occurred_at


async def test_waiting_for_submissions_reports_the_refused_ones_with_their_reason(
    common_settings: CommonSettings,
) -> None:
    from services.common.errors import Forbidden
    from services.invoicer.api import ConfigRefused, Submission, wait_config_applied
    from services.invoicer.handlers import apply_config

    accepted = config("acme")
    refused = config("globex", actor={"user_id": "eve", "role": "admin"})
    async with open_store(common_settings) as store:
        await apply_config(store, accepted)
        with pytest.raises(Forbidden):
            await apply_config(store, refused)
    await wait_config_applied(common_settings, [Submission("acme", accepted.event_id)], 10)
    with pytest.raises(ConfigRefused) as failed:
        await wait_config_applied(common_settings, [
            Submission("acme", accepted.event_id), Submission("globex", refused.event_id)], 10)
    assert failed.value.refused == {refused.event_id: "forbidden"}
    with pytest.raises(TimeoutError, match="initech"):
        await wait_config_applied(common_settings, [Submission("initech", "never-sent")], 0.5)
