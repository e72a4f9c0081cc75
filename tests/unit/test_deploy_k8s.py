"""deploy/k8s: the kustomize base validates against the Kubernetes schemas (offline, with
kubernetes-validate), KEDA ScaledObjects against a JSON Schema of the fields we use, and the
pieces agree with each other and with the code (commands, settings, topics, consumer groups)."""

import ast
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from contracts.topics import ALL_TOPICS
from tests.unit.test_deploy_common import (
    API,
    DEPLOY,
    SERVICES,
    WORKERS,
    load_yaml_documents,
    resolve_command,
    settings_env_names,
)

pytestmark = pytest.mark.unit

K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.30"

#: The part of KEDA's ScaledObject (keda.sh/v1alpha1) these manifests rely on
#: (https://keda.sh/docs/latest/reference/scaledobject-spec/, .../scalers/apache-kafka/).
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "triggers": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object", "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                        },
                        "if": {"properties": {"type": {"const": "kafka"}}},
                        "then": {"properties": {"metadata": {
                            "required": ["bootstrapServers", "consumerGroup", "topic",
                                         "lagThreshold"],
                            "properties": {"lagThreshold": {"pattern": "^[0-9]+$"}},
                        }}},
                    },
                },
            },
            "additionalProperties": False,
        },
    },
}


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, doc)
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in load_yaml_documents(path)
    ]


DOCUMENTS = _documents()


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in DOCUMENTS if doc["kind"] == kind}


def config_map() -> dict[str, str]:
    return {k: str(v) for k, v in by_kind("ConfigMap")["billing-config"]["data"].items()}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def worker_of(deployment: dict[str, Any]) -> str:
    args = container(deployment)["args"]
    assert args[0] == "run"
    return str(args[1])


@pytest.mark.parametrize(
    "doc",
    [doc for _, doc in DOCUMENTS if doc["apiVersion"] != "keda.sh/v1alpha1"],
    ids=lambda doc: f"{doc['kind']}/{doc['metadata']['name']}",
)
def test_each_manifest_validates_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_exactly_the_manifest_files() -> None:
    (kustomization,) = load_yaml_documents(K8S / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def workers() -> dict[str, dict[str, Any]]:
    """The Deployments of the Kafka workers (every Deployment but the API's)."""
    return {n: d for n, d in by_kind("Deployment").items() if worker_of(d) != API}


def api_deployment() -> dict[str, Any]:
    (api,) = [d for d in by_kind("Deployment").values() if worker_of(d) == API]
    return api


def test_there_is_a_deployment_per_worker_running_a_cli_command() -> None:
    deployments = by_kind("Deployment")
    assert sorted(worker_of(d) for d in deployments.values()) == sorted([*WORKERS, API])
    for name, deployment in deployments.items():
        args = container(deployment)["args"]
        assert resolve_command(args), f"{name}: `billing {' '.join(args)}`"


def test_every_billing_variable_in_the_config_and_secret_is_a_setting() -> None:
    known = settings_env_names()
    used = set(config_map())
    used |= set(by_kind("Secret")["billing-secrets"]["stringData"])
    for deployment in by_kind("Deployment").values():
        used |= {e["name"] for e in container(deployment).get("env", [])}
    used = {name for name in used if name.startswith("BILLING_")}
    assert used <= known, f"unknown settings: {sorted(used - known)}"


def test_workers_probe_health_and_readiness_on_the_configured_ops_port() -> None:
    ops_port = int(config_map()["BILLING_OPS_PORT"])
    assert config_map()["BILLING_OPS_HOST"] == "0.0.0.0"
    for name, deployment in workers().items():
        c = container(deployment)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["ops"] == ops_port, name
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}, name
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}, name
        refs = {next(iter(ref.values()))["name"] for ref in c["envFrom"]}
        assert refs == {"billing-config", "billing-secrets"}, name


def test_the_api_listens_on_its_configured_port_and_probes_it_there() -> None:
    settings = config_map()
    assert settings["BILLING_API_HOST"] == "0.0.0.0"
    c = container(api_deployment())
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": int(settings["BILLING_API_PORT"])}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["port"] == "http"
    refs = {next(iter(ref.values()))["name"] for ref in c["envFrom"]}
    assert refs == {"billing-config", "billing-secrets"}  # the signing key is a secret
    annotations = api_deployment()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == settings["BILLING_API_PORT"]


def test_the_api_service_exposes_port_8080_on_the_api_pods() -> None:
    service = by_kind("Service")["billing-api"]
    assert service["spec"]["selector"].items() <= \
        api_deployment()["spec"]["template"]["metadata"]["labels"].items()
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(8080, "http")]


def test_the_api_scales_on_cpu_with_a_horizontal_pod_autoscaler() -> None:
    (hpa,) = by_kind("HorizontalPodAutoscaler").values()
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", api_deployment()["metadata"]["name"])
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    # CPU utilisation is measured against the request: the container must declare one
    assert container(api_deployment())["resources"]["requests"]["cpu"]


def test_workers_are_hardened_and_bounded() -> None:
    for name, deployment in by_kind("Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        c = container(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], name
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][bound]), name


def test_rolling_updates_drain_before_the_grace_period_ends_and_keep_capacity() -> None:
    drain = float(config_map()["BILLING_SHUTDOWN_TIMEOUT_SECONDS"])
    for name, deployment in by_kind("Deployment").items():
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > drain + 10, name
        rolling = deployment["spec"]["strategy"]["rollingUpdate"]
        assert rolling["maxUnavailable"] == 0, name


def test_each_worker_has_a_pod_disruption_budget_selecting_its_pods() -> None:
    budgets = by_kind("PodDisruptionBudget")
    for name, deployment in by_kind("Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [
            b for b in budgets.values()
            if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(matching) == 1, name


def selects(selector: dict[str, str], pod: dict[str, Any]) -> bool:
    return selector.items() <= pod["metadata"]["labels"].items()


def test_services_select_worker_pods_and_target_named_ports() -> None:
    pods = [d["spec"]["template"] for d in by_kind("Deployment").values()]
    services = by_kind("Service")
    assert {"billing-stripe-webhooks", "billing-metrics"} <= set(services)
    for name, service in services.items():
        selected = [p for p in pods if selects(service["spec"]["selector"], p)]
        assert selected, f"{name} selects no pod"
        for port in service["spec"]["ports"]:
            for pod in selected:
                (c,) = pod["spec"]["containers"]
                assert port["targetPort"] in {p["name"] for p in c["ports"]}, name
    metrics = services["billing-metrics"]["spec"]["selector"]
    assert sum(selects(metrics, p) for p in pods) == len(WORKERS)  # the API has its own Service


def test_the_webhook_ingress_listens_on_the_ops_port_where_it_serves_its_probes() -> None:
    # `billing run stripe-webhooks` serves /healthz, /readyz and /metrics beside the webhook
    # route on BILLING_STRIPE_WEBHOOKS_PORT (services/payments/webhooks.py).
    settings = config_map()
    assert settings["BILLING_STRIPE_WEBHOOKS_PORT"] == settings["BILLING_OPS_PORT"]
    assert settings["BILLING_STRIPE_WEBHOOKS_HOST"] == "0.0.0.0"
    service = by_kind("Service")["billing-stripe-webhooks"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["ops"]


def test_scaled_objects_follow_the_keda_schema_and_target_every_worker() -> None:
    scaled = by_kind("ScaledObject")
    for doc in scaled.values():
        jsonschema.validate(doc, SCALED_OBJECT_SCHEMA)
    targets = [doc["spec"]["scaleTargetRef"]["name"] for doc in scaled.values()]
    hpas = [doc["spec"]["scaleTargetRef"]["name"]
            for doc in by_kind("HorizontalPodAutoscaler").values()]
    assert set(targets) == set(workers())
    assert sorted(targets + hpas) == sorted(by_kind("Deployment")), "one autoscaler each"


def test_kafka_triggers_watch_real_topics_and_never_scale_past_their_partitions() -> None:
    bootstrap = config_map()["BILLING_KAFKA_BOOTSTRAP_SERVERS"]
    for name, doc in by_kind("ScaledObject").items():
        kafka = [t["metadata"] for t in doc["spec"]["triggers"] if t["type"] == "kafka"]
        for trigger in kafka:
            assert trigger["bootstrapServers"] == bootstrap, name
            assert trigger["topic"] in ALL_TOPICS, name
        if kafka:
            most = max(ALL_TOPICS[t["topic"]] for t in kafka)
            # instances beyond a topic's partitions would sit idle
            assert doc["spec"]["maxReplicaCount"] <= most, name
            assert len({t["consumerGroup"] for t in kafka}) == 1, name


def declared_groups(package: Path) -> set[str]:
    """Consumer-group names a service declares: the argument of `settings.group(...)` (a string
    literal or a module-level string constant of the package) and the defaults of settings
    fields named `*group` (a string literal or such a constant)."""
    trees = [ast.parse(path.read_text(encoding="utf-8")) for path in package.rglob("*.py")]
    constants = {
        target.id: node.value.value
        for tree in trees
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    groups: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "group" and len(node.args) == 1
            ):
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    groups.add(arg.value)
                elif isinstance(arg, ast.Name) and arg.id in constants:
                    groups.add(constants[arg.id])
            if (
                isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and node.target.id.endswith("group")
            ):
                if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    groups.add(node.value.value)
                elif isinstance(node.value, ast.Name) and node.value.id in constants:
                    groups.add(constants[node.value.id])
    return groups


def test_the_group_scan_reads_literals_constants_and_settings_defaults(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text('SERVICE = "svc"\nx = settings.group(SERVICE)\n')
    (tmp_path / "b.py").write_text(
        'y = settings.group("other")\nclass S:\n    my_group: str = "g"\n'
    )
    assert declared_groups(tmp_path) == {"svc", "other", "g"}


def test_kafka_triggers_measure_the_consumer_group_the_worker_declares() -> None:
    for name, doc in by_kind("ScaledObject").items():
        deployment = by_kind("Deployment")[doc["spec"]["scaleTargetRef"]["name"]]
        package = SERVICES / worker_of(deployment).replace("-", "_")
        declared = declared_groups(package) if package.is_dir() else set()
        for trigger in doc["spec"]["triggers"]:
            if trigger["type"] == "kafka" and declared:
                assert trigger["metadata"]["consumerGroup"] in declared, (name, declared)
