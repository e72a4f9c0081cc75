"""Checks of deploy/Dockerfile, plus the helpers the other deploy checks share: what the CLI,
the settings classes and the metric definitions of the code actually offer, read at test time
so that commands, settings and metrics added by any service are picked up."""

import ast
import importlib
import inspect
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

pytestmark = pytest.mark.unit

#: Every worker command `billing run <worker>` the deployment must run.
WORKERS = ["usage-collector", "invoicer", "payments", "stripe-webhooks", "notifier"]

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

_METRIC_CLASSES = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}
_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
    "Info": ("_info",),
    "Enum": ("",),
}


def _prometheus_names(tree: ast.AST) -> tuple[dict[str, str], set[str]]:
    """Local name -> metric class imported from prometheus_client, and the module's aliases."""
    classes: dict[str, str] = {}
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "prometheus_client":
            for alias in node.names:
                if alias.name in _METRIC_CLASSES:
                    classes[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "prometheus_client":
                    modules.add(alias.asname or alias.name)
    return classes, modules


def _metric_definitions(tree: ast.AST) -> Iterator[tuple[str, str]]:
    """(class name, metric name) for each prometheus_client metric constructed in `tree`."""
    classes, modules = _prometheus_names(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name):
            kind = classes.get(func.id)
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            kind = func.attr if func.value.id in modules else None
        else:
            kind = None
        if kind not in _METRIC_CLASSES:
            continue
        args = {kw.arg: kw.value for kw in node.keywords}
        name_node = node.args[0] if node.args else args.get("name")
        if not (isinstance(name_node, ast.Constant) and isinstance(name_node.value, str)):
            continue
        parts = [
            n.value
            for key in ("namespace", "subsystem")
            if isinstance(n := args.get(key), ast.Constant) and n.value
        ]
        yield kind, "_".join([*parts, name_node.value])


@cache
def exported_metrics() -> frozenset[str]:
    """Every series name the code exports: prometheus_client metric definitions found in the
    sources of services/ (counters gain `_total`, histograms `_bucket/_sum/_count`...)."""
    names: set[str] = set()
    for path in SERVICES.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for kind, name in _metric_definitions(tree):
            if kind == "Counter":
                name = name.removesuffix("_total")
            names.update(name + suffix for suffix in _SUFFIXES[kind])
    return frozenset(names)


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
    tree = ast.parse(
        "from prometheus_client import Counter, Histogram as H\n"
        "import prometheus_client as pc\n"
        "a = Counter('billing_a_total', 'a')\n"
        "b = H('b_seconds', 'b', namespace='billing')\n"
        "c = pc.Gauge('billing_c', 'c')\n"
    )
    assert sorted(_metric_definitions(tree)) == [
        ("Counter", "billing_a_total"), ("Gauge", "billing_c"), ("Histogram", "billing_b_seconds"),
    ]
    unrelated = ast.parse("from collections import Counter\nx = Counter('abc')\n")
    assert list(_metric_definitions(unrelated)) == []
