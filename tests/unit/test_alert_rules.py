"""Every alert rule in deploy/prometheus/alerts.yml can fire, and stays quiet when all is well.

For each rule, two timelines: what a failing worker exports and what a healthy one exports.
Each minute of a timeline moves the code's own metric objects (the counters and gauges the
workers update), then scrapes the real `/metrics` route of the ops endpoint and keeps every
sample at that minute; series that only Prometheus or the lag exporter produce (`up`,
`kafka_consumergroup_lag`) are added as those would scrape them. The rule's expression is then
evaluated over the scraped series as Prometheus would, its `for:` included
(`tests/support/promql.py`), so a metric renamed in the code, or a rule that cannot be true,
fails here.
"""

import asyncio
import math
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from services.common.metrics import DEAD_LETTERS, OUTBOX_BACKLOG
from services.common.ops import ops_app
from services.payments.adapters.metrics import OUTCOMES, WEBHOOKS
from tests.support.promql import fires
from tests.support.promql_types import Labels, Series, Unsupported
from tests.unit.test_deploy_monitoring import alert_rules

pytestmark = pytest.mark.unit

STEP_SECONDS = 60.0
#: External series a scenario adds per minute: (name, labels) -> value.
External = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Timeline:
    """Scrapes of the ops endpoint, one per simulated minute, as Prometheus series."""

    service: str = field(default_factory=lambda: f"alert-test-{uuid.uuid4().hex[:8]}")
    series: Series = field(default_factory=dict)
    minutes: int = 0

    async def scrape(self, client: httpx.AsyncClient, external: External) -> None:
        """Record every sample of `/metrics` (and `external`) at the current minute."""
        at = self.minutes * STEP_SECONDS
        response = await client.get("/metrics")
        response.raise_for_status()
        text = response.text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.labels.get("service", self.service) != self.service:
                    continue  # other tests' workers in this process are not in the scenario
                self._add(sample.name, sample.labels, sample.value, at)
        for (name, labels), value in external.items():
            self._add(name, dict(labels), value, at)
        self.minutes += 1

    def _add(self, name: str, labels: dict[str, str], value: float, at: float) -> None:
        key: Labels = frozenset({**labels, "__name__": name}.items())
        self.series.setdefault(key, []).append((at, value))

    @property
    def now(self) -> float:
        return (self.minutes - 1) * STEP_SECONDS


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


def no_external(*_: Any) -> External:
    return {}


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
    """A rule's failing and healthy timelines: (minutes, minute) each."""

    failing: tuple[int, Minute]
    healthy: list[tuple[int, Minute]]


CASES: dict[str, Case] = {
    "BillingConsumerLagGrowing": Case(
        failing=(45, lag(lambda i: 1500 + 40 * i)),
        healthy=[(45, lag(lambda i: 5000)), (45, lag(lambda i: 100 + 10 * i))],
    ),
    "BillingWorkerDown": Case(
        failing=(12, up(lambda i: 1 if i < 5 else 0)),
        healthy=[(12, up(lambda i: 1)), (12, up(lambda i: 0 if i == 9 else 1))],
    ),
    "BillingDeadLettersArriving": Case(
        failing=(20, dead_letters({17})),
        healthy=[(20, dead_letters(set())), (30, dead_letters({5}))],
    ),
    "BillingOutboxBacklogHigh": Case(
        failing=(30, outbox_backlog(lambda i: 150 + 10 * i)),
        healthy=[(30, outbox_backlog(lambda i: 0 if i % 4 == 0 else 800)),
                 (30, outbox_backlog(lambda i: 40))],
    ),
    "BillingPaymentFailureRatioHigh": Case(
        failing=(90, payments(succeeded=1, failed=1)),
        healthy=[(90, payments(succeeded=9, failed=1)), (90, payments(succeeded=0, failed=0))],
    ),
    "BillingWebhookSignaturesRejected": Case(
        failing=(20, webhooks("bad_signature", 1)),
        healthy=[(20, webhooks("accepted", 30))],
    ),
}


def hold_seconds(rule: dict[str, Any]) -> float:
    match = re.fullmatch(r"(\d+)([smh])", str(rule.get("for", "0s")))
    assert match, rule["alert"]
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


def firing(rule: dict[str, Any], timeline: Timeline) -> dict[Labels, float]:
    return fires(rule["expr"], timeline.series, timeline.now, hold_seconds(rule), STEP_SECONDS)


def test_every_alert_rule_has_a_failing_and_a_healthy_timeline() -> None:
    assert sorted(CASES) == sorted(rule["alert"] for rule in alert_rules())


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_the_rule_fires_for_a_failing_worker_and_not_for_a_healthy_one(
    rule: dict[str, Any],
) -> None:
    case = CASES[rule["alert"]]
    alerts = firing(rule, run(*case.failing))
    assert alerts, f"{rule['alert']} did not fire for the failing timeline"
    assert all(not math.isnan(value) for value in alerts.values())
    for minutes, minute in case.healthy:
        assert not firing(rule, run(minutes, minute)), f"{rule['alert']} fired while healthy"


def test_an_alert_with_a_hold_time_does_not_fire_before_it_has_held() -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == "BillingOutboxBacklogHigh"]
    # drained for 10 minutes, then stuck: min_over_time needs 10 minutes, then `for:` 5 more
    def stuck_from_minute_10(i: int) -> float:
        return 0 if i < 10 else 500

    # run(n) ends at minute n - 1: stuck for 14 minutes, then for 15
    assert not firing(rule, run(10 + 14 + 1, outbox_backlog(stuck_from_minute_10)))
    assert firing(rule, run(10 + 15 + 1, outbox_backlog(stuck_from_minute_10)))


def test_the_outbox_alert_labels_name_the_service_whose_outbox_is_stuck() -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == "BillingOutboxBacklogHigh"]
    timeline = run(30, outbox_backlog(lambda i: 150))
    ((labels, value),) = firing(rule, timeline).items()
    assert dict(labels) == {"service": timeline.service}
    assert value == 150


def test_the_timeline_reads_the_metrics_the_workers_export() -> None:
    timeline = run(2, payments(succeeded=1, failed=0))
    names = {dict(labels)["__name__"] for labels in timeline.series}
    assert "billing_payments_outcomes_total" in names


def promtool_case(rule: dict[str, Any], minutes: int, minute: Minute) -> dict[str, Any]:
    """A `promtool test rules` case: the timeline's series and the alerts evaluated here."""
    timeline = run(minutes, minute)
    inputs = []
    for labels, samples in timeline.series.items():
        found = dict(labels)
        name = found.pop("__name__")
        if name.startswith(("billing_", "up", "kafka_")):
            at = dict(samples)
            values = [at.get(i * STEP_SECONDS) for i in range(minutes)]
            selector = ",".join(f'{k}="{v}"' for k, v in sorted(found.items()))
            inputs.append({"series": f"{name}{{{selector}}}", "values": " ".join(
                "_" if v is None else repr(v) for v in values)})
    expected = [
        {"exp_labels": {**{k: v for k, v in labels if k != "__name__"}, **rule["labels"]}}
        for labels in firing(rule, timeline)
    ]
    return {"interval": "1m", "input_series": inputs, "alert_rule_test": [
        {"eval_time": f"{minutes - 1}m", "alertname": rule["alert"], "exp_alerts": expected}]}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_fires_exactly_the_alerts_evaluated_here(tmp_path: Path) -> None:
    rules = [{k: v for k, v in rule.items() if k != "annotations"} for rule in alert_rules()]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "billing",
                                                                     "rules": rules}]}))
    cases = [promtool_case(rule, minutes, minute) for rule in alert_rules()
             for minutes, minute in [CASES[rule["alert"]].failing,
                                     *CASES[rule["alert"]].healthy]]
    (tmp_path / "test.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": cases}))
    result = subprocess.run(["promtool", "test", "rules", str(tmp_path / "test.yml")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_metric_renamed_in_the_code_would_leave_its_rule_silent() -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == "BillingDeadLettersArriving"]
    timeline = run(*CASES[rule["alert"]].failing)
    renamed = {
        frozenset(("__name__", "billing_dead_lettered_total") if pair == (
            "__name__", "billing_dead_letters_total") else pair for pair in labels): samples
        for labels, samples in timeline.series.items()
    }
    assert firing(rule, timeline)
    assert not fires(rule["expr"], renamed, timeline.now, 0, STEP_SECONDS)


def test_promql_outside_the_evaluated_subset_is_refused() -> None:
    with pytest.raises(Unsupported):
        fires("histogram_quantile(0.9, billing_x_bucket) > 1", {}, 0, 0, STEP_SECONDS)
