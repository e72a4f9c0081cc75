"""deploy/prometheus and deploy/grafana: alert rules and dashboard panels use only metrics the
code registers (every module of services/ imported, the registry read) or that named exporters
provide, each alert is explained in docs/operations.md, and the scrape configuration finds every
worker. That each rule can fire: tests/unit/test_alert_rules.py."""

import json
import re
from typing import Any

import pytest

from tests.unit.test_deploy_common import (
    API,
    DEPLOY,
    EXTERNAL_METRICS,
    ROOT,
    WORKERS,
    exported_metrics,
    load_yaml_documents,
    promql_metrics,
)

pytestmark = pytest.mark.unit

#: What the issue asks the alerts to cover -> a metric each such alert must use.
REQUIRED_ALERT_METRICS = {
    "consumer lag": "kafka_consumergroup_lag",
    "dead letters": "billing_dead_letters_total",
    "outbox backlog": "billing_outbox_backlog",
}
PAYMENT_OUTCOMES = "billing_payments_outcomes_total"


def alert_rules() -> list[dict[str, Any]]:
    (document,) = load_yaml_documents(DEPLOY / "prometheus" / "alerts.yml")
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_targets() -> list[tuple[str, str]]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text(encoding="utf-8"))
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def balanced(expr: str) -> bool:
    depth = {"(": 0, "{": 0, "[": 0}
    closing = {")": "(", "}": "{", "]": "["}
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', "", expr):
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            if depth[closing[char]] < 0:
                return False
    return not any(depth.values())


def test_every_alert_rule_is_complete_and_well_formed() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))
    for rule in alert_rules():
        assert balanced(rule["expr"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["alert"]


def test_alert_rules_reference_only_metrics_the_code_exports() -> None:
    available = exported_metrics() | EXTERNAL_METRICS
    for rule in alert_rules():
        used = promql_metrics(rule["expr"])
        assert used, rule["alert"]
        assert used <= available, f"{rule['alert']}: not exported {sorted(used - available)}"


def test_the_alerts_cover_lag_dead_letters_and_outbox_backlog() -> None:
    used = set().union(*(promql_metrics(rule["expr"]) for rule in alert_rules()))
    for concern, metric in REQUIRED_ALERT_METRICS.items():
        assert metric in used, concern


def test_an_alert_watches_the_ratio_of_failed_payments() -> None:
    assert PAYMENT_OUTCOMES in exported_metrics()
    ratios = [
        rule for rule in alert_rules()
        if PAYMENT_OUTCOMES in promql_metrics(rule["expr"])
        and '"failed"' in rule["expr"] and "/" in rule["expr"]
    ]
    assert ratios


def test_every_alert_is_explained_in_the_operations_guide() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    headings = {line.lstrip("#").strip() for line in guide.splitlines() if line.startswith("#")}
    for rule in alert_rules():
        assert rule["alert"] in headings, rule["alert"]


def test_dashboard_panels_query_only_exported_metrics() -> None:
    available = exported_metrics() | EXTERNAL_METRICS
    targets = dashboard_targets()
    assert targets
    for title, expr in targets:
        used = promql_metrics(expr)
        assert balanced(expr), title
        assert used and used <= available, f"{title}: not exported {sorted(used - available)}"


def test_the_dashboard_shows_every_metric_an_alert_uses() -> None:
    shown = set().union(*(promql_metrics(expr) for _, expr in dashboard_targets()))
    for rule in alert_rules():
        assert promql_metrics(rule["expr"]) <= shown, rule["alert"]


def test_dashboard_panel_ids_are_unique() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text(encoding="utf-8"))
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_prometheus_scrapes_every_worker_on_its_ops_port_and_loads_the_rules() -> None:
    (config,) = load_yaml_documents(DEPLOY / "prometheus" / "prometheus.yml")
    (compose,) = load_yaml_documents(DEPLOY / "docker-compose.yml")
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "billing")
    (dns,) = job["dns_sd_configs"]
    assert sorted(dns["names"]) == sorted(WORKERS)
    for worker in WORKERS:
        assert str(dns["port"]) == compose["services"][worker]["environment"]["BILLING_OPS_PORT"]
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    mounts = " ".join(compose["services"]["prometheus"]["volumes"])
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml" in mounts
    exporter = next(j for j in config["scrape_configs"] if j["job_name"] == "kafka-exporter")
    assert exporter["static_configs"][0]["targets"] == ["kafka-exporter:9308"]
    assert "kafka-exporter" in compose["services"]


def test_prometheus_scrapes_the_api_on_its_http_port() -> None:
    (config,) = load_yaml_documents(DEPLOY / "prometheus" / "prometheus.yml")
    (compose,) = load_yaml_documents(DEPLOY / "docker-compose.yml")
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "billing-api")
    (dns,) = job["dns_sd_configs"]
    assert dns["names"] == [API]
    assert str(dns["port"]) == compose["services"][API]["environment"]["BILLING_API_PORT"]
    assert job["metrics_path"] == "/metrics"


def test_the_kubernetes_scrape_job_keeps_the_worker_and_the_api_endpoints() -> None:
    (config,) = load_yaml_documents(DEPLOY / "prometheus" / "prometheus-kubernetes.yml")
    (job,) = config["scrape_configs"]
    keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
    pattern = re.compile(f"^(?:{keep['regex']})$")  # Prometheus anchors relabel regexes
    assert pattern.match("billing-metrics;ops") and pattern.match("billing-api;http")
    assert not pattern.match("billing-stripe-webhooks;http")
