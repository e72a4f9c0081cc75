"""Checks of deploy/Dockerfile, plus the helpers the other deploy checks share: what the CLI,
the settings classes and the metric definitions of the code actually offer, read at test time
so that commands, settings and metrics added by any service are picked up."""

import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

pytestmark = pytest.mark.unit

#: Every worker command `billing run <worker>` the deployment must run.
WORKERS = ["usage-collector", "invoicer", "payments", "stripe-webhooks", "notifier"]
#: The Billing API (`billing run api`): deployed beside the workers, serving HTTP on its own
#: port (BILLING_API_PORT) with its probes and /metrics, scaled on CPU.
API = "api"

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICES = ROOT / "services"

#: Metrics the alert rules and dashboard may use that are not exported by our code:
#: `up` is Prometheus' own per-target series; kafka-exporter (deploy/docker-compose.yml,
#: profile "observability") exports the consumer-group lag per partition.
EXTERNAL_METRICS = {"up", "kafka_consumergroup_lag", "kafka_consumergroup_lag_sum"}

# --------------------------------------------------------------------------- CLI


def resolve_command(args: list[str]) -> bool:
    """True when `billing ARGS... --help` succeeds, i.e. every sub-command word in ARGS exists
    in the Typer app of services.cli (a missing one exits 2 with "No such command")."""
    from services.cli import app

    words = [str(word) for word in args]
    result = CliRunner().invoke(app, [*words, "--help"])
    return result.exit_code == 0


# ---------------------------------------------------------------------- settings


def settings_modules() -> Iterator[Any]:
    """services.common.settings and every services/<name>/settings.py."""
    yield importlib.import_module("services.common.settings")
    for path in sorted(SERVICES.glob("*/settings.py")):
        yield importlib.import_module(f"services.{path.parent.name}.settings")


def settings_env_names() -> set[str]:
    """Every environment variable some settings class reads (prefix + field name, aliases)."""
    names: set[str] = set()
    for module in settings_modules():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, BaseSettings) or cls is BaseSettings:
                continue
            prefix = str(cls.model_config.get("env_prefix", ""))
            for field_name, field in cls.model_fields.items():
                names.add(f"{prefix}{field_name}".upper())
                for alias in (field.alias, field.validation_alias):
                    if isinstance(alias, str):
                        names.add(alias.upper())
    return names


# ----------------------------------------------------------------------- metrics

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


def import_every_service_module() -> None:
    """Import every module of services/ (not the `__main__` entry points), so that each metric
    the code declares is registered in prometheus_client's default registry."""
    import services

    for module in pkgutil.walk_packages(services.__path__, "services."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)


def registry_series_names(registry: CollectorRegistry) -> frozenset[str]:
    """Every series name the metric families of `registry` export or will export once they
    have children (counters `_total`, histograms `_bucket/_sum/_count`...)."""
    return frozenset(
        family.name + suffix
        for family in registry.collect()
        for suffix in _SUFFIXES.get(family.type, ("",))
    )


@cache
def exported_metrics() -> frozenset[str]:
    """Every series name the code exports: the families registered in the default registry
    once every module of services/ is imported (what the workers' `/metrics` serves)."""
    import_every_service_module()
    return registry_series_names(REGISTRY)


_PROMQL_WORDS = {
    # aggregations, keywords and functions (https://prometheus.io/docs/prometheus/latest/querying/)
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile", "limitk", "limit_ratio", "by", "without", "on", "ignoring",
    "group_left", "group_right", "and", "or", "unless", "bool", "offset", "atan2",
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp",
    "floor", "histogram_quantile", "histogram_count", "histogram_sum", "histogram_avg",
    "histogram_fraction", "holt_winters", "hour", "idelta", "increase", "irate", "label_join",
    "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear", "rate",
    "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "time", "timestamp",
    "vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
    "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time",
    "last_over_time", "present_over_time", "inf", "nan",
}


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label matchers, grouping labels,
    strings, durations, functions and Grafana variables removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', " ", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )
    text = re.sub(r"\$\w+", " ", text)
    words = re.findall(r"(?<![\w.])[A-Za-z_:][\w:]*", text)
    return {w for w in words if w.lower() not in _PROMQL_WORDS}


# ------------------------------------------------------------------------ files


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document in `path`."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


# ------------------------------------------------------------------------ tests


def test_the_image_runs_the_billing_cli_as_its_entrypoint() -> None:
    entrypoints = [args for word, args in dockerfile_instructions() if word == "ENTRYPOINT"]
    assert entrypoints[-1] == '["billing"]'


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [args for word, args in dockerfile_instructions() if word == "USER"]
    assert users, "no USER instruction: the container would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_the_image_installs_the_project_without_its_test_extra() -> None:
    runs = " ".join(args for word, args in dockerfile_instructions() if word == "RUN")
    assert re.search(r"pip install (--\S+ )*\.(\s|$)", runs), runs
    assert "[test]" not in runs


def test_the_image_sets_only_billing_variables_the_settings_define() -> None:
    known = settings_env_names()
    envs = " ".join(args for word, args in dockerfile_instructions() if word == "ENV")
    used = set(re.findall(r"\b(BILLING_\w+)=", envs))
    assert "BILLING_OPS_HOST" in used
    assert used <= known, f"unknown settings: {sorted(used - known)}"


def test_the_image_listens_for_ops_on_all_interfaces() -> None:
    envs = " ".join(args for word, args in dockerfile_instructions() if word == "ENV")
    assert "BILLING_OPS_HOST=0.0.0.0" in envs


def test_promql_parsing_keeps_metric_names_and_drops_labels_and_functions() -> None:
    expr = (
        'sum by (service) (rate(billing_x_total{reason="bad input"}[5m])) / '
        "ignoring(le) histogram_quantile(0.9, billing_y_bucket) > $threshold"
    )
    assert promql_metrics(expr) == {"billing_x_total", "billing_y_bucket"}


def test_the_metric_scan_finds_the_shared_worker_metrics() -> None:
    metrics = exported_metrics()
    assert {"billing_dead_letters_total", "billing_outbox_backlog"} <= metrics


def test_the_metric_scan_names_series_as_prometheus_client_exports_them() -> None:
    registry = CollectorRegistry()
    Counter("billing_a_total", "a", registry=registry)
    Histogram("b_seconds", "b", namespace="billing", registry=registry)
    Gauge("billing_c", "c", ["service"], registry=registry)
    names = registry_series_names(registry)
    assert {"billing_a_total", "billing_b_seconds_bucket", "billing_b_seconds_count",
            "billing_c"} <= names
    assert "billing_a" not in names and "billing_b_seconds" not in names
