"""Every alert rule in deploy/prometheus/alerts.yml can fire, and stays quiet when all is well.

Each rule has a timeline of what a failing worker exports and timelines of healthy ones. Each
minute moves the code's own metric objects, then scrapes the real `/metrics` route of the ops
endpoint and keeps its `billing_*` samples; `up` and `kafka_consumergroup_lag`, which only
Prometheus and the lag exporter produce, are added as those would scrape them. Prometheus' own
`promtool test rules` evaluates the rules over those series, `for:` included, in one run for all
timelines (`tests/support/promtool.py`): the alert must fire with exactly the expected labels at
the end of the failing timeline and stay silent on the healthy ones.
"""

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common.metrics import DEAD_LETTERS, OUTBOX_BACKLOG
from services.common.ops import ops_app
from services.payments.adapters.metrics import OUTCOMES, WEBHOOKS
from tests.support import promtool
from tests.unit.test_deploy_common import DEPLOY, load_yaml_documents
from tests.unit.test_deploy_monitoring import alert_rules

pytestmark = pytest.mark.unit

ALERTS_FILE = DEPLOY / "prometheus" / "alerts.yml"
#: A series: metric name and its labels, sorted.
Key = tuple[str, tuple[tuple[str, str], ...]]
#: External series a scenario adds in one minute -> their values.
External = dict[Key, float]


@dataclass
class Timeline:
    """Scrapes of the ops endpoint, one per simulated minute: series -> {minute: value}."""

    service: str = field(default_factory=lambda: f"alert-test-{uuid.uuid4().hex[:8]}")
    samples: dict[Key, dict[int, float]] = field(default_factory=dict)
    minutes: int = 0

    async def scrape(self, client: httpx.AsyncClient, external: External) -> None:
        """Record every `billing_*` sample of `/metrics` (and `external`) at the current minute."""
        response = await client.get("/metrics")
        response.raise_for_status()
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if not sample.name.startswith("billing_"):
                    continue
                if sample.labels.get("service", self.service) != self.service:
                    continue  # other tests' workers in this process are not in the scenario
                self._add((sample.name, tuple(sorted(sample.labels.items()))), sample.value)
        for key, value in external.items():
            self._add(key, value)
        self.minutes += 1

    def _add(self, key: Key, value: float) -> None:
        self.samples.setdefault(key, {})[self.minutes] = value

    def series(self, rename: dict[str, str] | None = None) -> list[promtool.Series]:
        """The timeline as promtool input, metric names optionally renamed."""
        names = rename or {}
        return [promtool.Series(names.get(name, name), dict(labels),
                                [at.get(minute) for minute in range(self.minutes)])
                for (name, labels), at in self.samples.items()]


#: One simulated minute: (minute index, the scenario's service) -> external series.
Minute = Callable[[int, str], External]


def run(minutes: int, minute: Minute) -> Timeline:
    """Play `minute` for `minutes` simulated minutes, scraping after each."""

    async def ready() -> dict[str, bool]:
        return {}

    async def play() -> Timeline:
        timeline = Timeline()
        transport = httpx.ASGITransport(app=ops_app(ready))
        async with httpx.AsyncClient(transport=transport, base_url="http://ops") as client:
            for i in range(minutes):
                await timeline.scrape(client, minute(i, timeline.service))
        return timeline

    return asyncio.run(play())


# ------------------------------------------------------------------ scenarios per rule


def lag(values: Callable[[int], float]) -> Minute:
    def minute(i: int, _: str) -> External:
        key = (("consumergroup", "invoicer"), ("partition", "0"), ("topic", "billing.payment.v1"))
        return {("kafka_consumergroup_lag", key): values(i)}

    return minute


def up(value: Callable[[int], float]) -> Minute:
    def minute(i: int, _: str) -> External:
        key = (("instance", "invoicer:9000"), ("job", "billing"), ("worker", "invoicer"))
        return {("up", key): value(i)}

    return minute


def dead_letters(at_minutes: set[int]) -> Minute:
    def minute(i: int, service: str) -> External:
        child = DEAD_LETTERS.labels(service=service, reason="invalid_json")
        if i in at_minutes:
            child.inc()
        return {}

    return minute


def outbox_backlog(value: Callable[[int], float]) -> Minute:
    def minute(i: int, service: str) -> External:
        OUTBOX_BACKLOG.labels(service=service, outbox=f"{service}_outbox").set(value(i))
        return {}

    return minute


def payments(succeeded: int, failed: int) -> Minute:
    def minute(i: int, _: str) -> External:
        OUTCOMES.labels("succeeded").inc(succeeded)
        OUTCOMES.labels("failed").inc(failed)
        return {}

    return minute


def webhooks(result: str, per_minute: int) -> Minute:
    def minute(i: int, _: str) -> External:
        WEBHOOKS.labels(result).inc(per_minute)
        return {}

    return minute


@dataclass(frozen=True)
class Case:
    """A rule's failing timeline and healthy ones, each as (minutes, minute).

    `fires_with`: the labels of the alert at the end of the failing timeline, besides the
    rule's own labels ("{service}" stands for the timeline's service). Healthy timelines must
    stay silent at every minute from `quiet_from` on.
    """

    failing: tuple[int, Minute]
    fires_with: dict[str, str]
    healthy: list[tuple[int, Minute]]
    quiet_from: int = 0


CASES: dict[str, Case] = {
    "BillingConsumerLagGrowing": Case(
        failing=(45, lag(lambda i: 1500 + 40 * i)),
        fires_with={"consumergroup": "invoicer", "topic": "billing.payment.v1"},
        healthy=[(45, lag(lambda i: 5000)), (45, lag(lambda i: 100 + 10 * i))],
    ),
    "BillingWorkerDown": Case(
        failing=(12, up(lambda i: 1 if i < 5 else 0)),
        fires_with={"instance": "invoicer:9000", "job": "billing", "worker": "invoicer"},
        healthy=[(12, up(lambda i: 1)), (12, up(lambda i: 0 if i == 9 else 1))],
    ),
    "BillingDeadLettersArriving": Case(
        failing=(20, dead_letters({17})),
        fires_with={"service": "{service}", "reason": "invalid_json"},
        # a dead letter at minute 5 fires until its 10-minute window has passed it
        healthy=[(20, dead_letters(set())), (30, dead_letters({5}))],
        quiet_from=15,
    ),
    "BillingOutboxBacklogHigh": Case(
        failing=(30, outbox_backlog(lambda i: 150 + 10 * i)),
        fires_with={"service": "{service}"},
        healthy=[(30, outbox_backlog(lambda i: 0 if i % 4 == 0 else 800)),
                 (30, outbox_backlog(lambda i: 40))],
    ),
    "BillingPaymentFailureRatioHigh": Case(
        failing=(90, payments(succeeded=1, failed=1)),
        fires_with={},
        healthy=[(90, payments(succeeded=9, failed=1)), (90, payments(succeeded=0, failed=0))],
    ),
    "BillingWebhookSignaturesRejected": Case(
        failing=(20, webhooks("bad_signature", 1)),
        fires_with={},
        healthy=[(20, webhooks("accepted", 30))],
    ),
}


def alert_labels(alert: str, timeline: Timeline) -> dict[str, str]:
    """The labels the alert must fire with at the end of the rule's failing timeline."""
    (rule,) = [rule for rule in alert_rules() if rule["alert"] == alert]
    found = {key: value.format(service=timeline.service)
             for key, value in CASES[alert].fires_with.items()}
    return {**found, **rule["labels"]}


def case_groups(alert: str) -> list[promtool.Group]:
    """The rule's timelines as promtool groups, named after the alert."""
    case = CASES[alert]
    minutes, minute = case.failing
    failing = run(minutes, minute)
    groups = [promtool.Group(f"{alert} fires for a failing worker", failing.series(),
                             [promtool.Check(minutes - 1, alert, [alert_labels(alert, failing)])])]
    for n, (minutes, minute) in enumerate(case.healthy, start=1):
        checks = [promtool.Check(at, alert, []) for at in range(case.quiet_from, minutes)]
        groups.append(promtool.Group(f"{alert} stays quiet for healthy worker {n}",
                                     run(minutes, minute).series(), checks))
    return groups


HELD = "hold time: BillingOutboxBacklogHigh fires only once its `for:` has passed"
RENAMED = "renamed metric: BillingDeadLettersArriving cannot fire (this group must fail)"


def extra_groups() -> list[promtool.Group]:
    """A hold time (`for:`) kept to the minute, and a renamed metric that must go unnoticed."""
    alert = "BillingOutboxBacklogHigh"
    # drained for 10 minutes, then stuck: min_over_time needs 10 minutes, then `for:` 5 more
    stuck = run(26, outbox_backlog(lambda i: 0 if i < 10 else 500))
    held = promtool.Group(HELD, stuck.series(), [
        promtool.Check(24, alert, []),
        promtool.Check(25, alert, [alert_labels(alert, stuck)])])
    alert = "BillingDeadLettersArriving"
    minutes, minute = CASES[alert].failing
    failing = run(minutes, minute)
    renamed = promtool.Group(
        RENAMED, failing.series({"billing_dead_letters_total": "billing_dead_lettered_total"}),
        [promtool.Check(minutes - 1, alert, [alert_labels(alert, failing)])])
    return [held, renamed]


def rules_without_annotations() -> dict[str, Any]:
    """alerts.yml as loaded, without annotations (promtool would compare them too)."""
    (document,) = load_yaml_documents(ALERTS_FILE)
    return {"groups": [
        {**group, "rules": [{key: value for key, value in rule.items() if key != "annotations"}
                            for rule in group["rules"]]}
        for group in document["groups"]]}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> promtool.Outcome:
    """One promtool run over every rule's timelines and the extra groups."""
    groups = [group for alert in CASES for group in case_groups(alert)] + extra_groups()
    return promtool.run_rule_tests(rules_without_annotations(), groups,
                                   tmp_path_factory.mktemp("promtool"))


def test_every_alert_rule_has_a_failing_and_a_healthy_timeline() -> None:
    assert sorted(CASES) == sorted(rule["alert"] for rule in alert_rules())
    assert all(case.healthy for case in CASES.values())


@pytest.mark.parametrize("alert", [rule["alert"] for rule in alert_rules()])
def test_the_rule_fires_for_a_failing_worker_and_not_for_a_healthy_one(
    alert: str, outcome: promtool.Outcome,
) -> None:
    failed = sorted(name for name in outcome.failed if name.startswith(f"{alert} "))
    assert not failed, outcome.report(failed)


def test_an_alert_with_a_hold_time_does_not_fire_before_it_has_held(
    outcome: promtool.Outcome,
) -> None:
    assert HELD not in outcome.failed, outcome.report([HELD])


def test_a_metric_renamed_in_the_code_would_leave_its_rule_silent(
    outcome: promtool.Outcome,
) -> None:
    assert RENAMED in outcome.failed, "promtool found the alert under a renamed metric"


def test_the_timeline_reads_the_metrics_the_workers_export() -> None:
    timeline = run(2, payments(succeeded=1, failed=0))
    assert "billing_payments_outcomes_total" in {name for name, _ in timeline.samples}


def test_promtool_accepts_the_rule_file_with_its_annotation_templates() -> None:
    assert f"SUCCESS: {len(alert_rules())} rules found" in promtool.check_rules(ALERTS_FILE)


def test_a_missing_promtool_fails_the_test_and_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="make install"):
        promtool.find()
