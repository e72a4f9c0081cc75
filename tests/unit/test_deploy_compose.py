"""deploy/docker-compose.yml runs the real thing: every worker's command exists in the CLI,
every BILLING_ variable is a setting, topics get their partition counts, workers can scale."""

import importlib.util
import re
from typing import Any

import pytest

from contracts.topics import ALL_TOPICS
from tests.unit.test_deploy_common import (
    API,
    DEPLOY,
    WORKERS,
    load_yaml_documents,
    resolve_command,
    settings_env_names,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    (document,) = load_yaml_documents(DEPLOY / "docker-compose.yml")
    return document


def billing_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the project's image with its `billing` entrypoint."""
    return {
        name: svc
        for name, svc in compose["services"].items()
        if str(svc.get("image", "")).startswith("billing-platform") and "entrypoint" not in svc
    }


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_every_worker_has_a_service_running_billing_run_worker(compose: dict[str, Any]) -> None:
    services = billing_services(compose)
    for worker in WORKERS:
        assert services[worker]["command"] == ["run", worker]


def test_every_billing_service_command_exists_in_the_cli(compose: dict[str, Any]) -> None:
    for name, service in billing_services(compose).items():
        command = [str(word) for word in service["command"]]
        assert resolve_command(command), f"{name}: `billing {' '.join(command)}`"


def test_every_billing_variable_in_compose_is_a_setting(compose: dict[str, Any]) -> None:
    known = settings_env_names()
    for name, service in compose["services"].items():
        used = {key for key in environment(service) if key.startswith("BILLING_")}
        assert used <= known, f"{name}: unknown settings {sorted(used - known)}"


def test_workers_reach_kafka_mongodb_and_serve_ops_on_all_interfaces(
    compose: dict[str, Any],
) -> None:
    for name in WORKERS:
        env = environment(compose["services"][name])
        assert env["BILLING_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        assert "replicaSet=rs0" in env["BILLING_MONGO_URI"], name
        assert env["BILLING_OPS_HOST"] == "0.0.0.0", name
        assert env["BILLING_OPS_PORT"] in compose["services"][name]["expose"], name


def test_scaled_services_have_no_container_name_and_no_fixed_host_port(
    compose: dict[str, Any],
) -> None:
    for name in WORKERS:
        service = compose["services"][name]
        assert "container_name" not in service, name
        for port in service.get("ports", []):
            assert ":" not in str(port), f"{name}: host port {port} prevents --scale"


def test_workers_start_after_topics_exist_and_mongodb_is_healthy(
    compose: dict[str, Any],
) -> None:
    for name in WORKERS:
        depends = compose["services"][name]["depends_on"]
        assert depends["kafka-init"]["condition"] == "service_completed_successfully"
        assert depends["mongo"]["condition"] == "service_healthy"


def test_kafka_runs_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert "ZOOKEEPER" not in " ".join(kafka["environment"]).upper()


def test_topic_init_creates_every_topic_with_its_partition_count(
    compose: dict[str, Any],
) -> None:
    init = compose["services"]["kafka-init"]
    assert init["image"].startswith("apache/kafka:")
    script = "\n".join(init["command"])
    assert "kafka-topics.sh" in script and "--if-not-exists" in script
    created = {
        topic: int(parts)
        for topic, parts in re.findall(r"^\s*create\s+(\S+)\s+(\d+)\s*$", script, re.M)
    }
    assert created == ALL_TOPICS


def test_mongodb_is_a_replica_set_the_compose_file_initiates(compose: dict[str, Any]) -> None:
    mongo = compose["services"]["mongo"]
    assert mongo["image"].startswith("mongo:")
    assert mongo["command"][:2] == ["--replSet", "rs0"]
    check = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate" in check and "_id: 'rs0'" in check


def test_the_stack_includes_an_smtp_catcher_the_notifier_uses(compose: dict[str, Any]) -> None:
    assert compose["services"]["mailpit"]["image"].startswith("axllent/mailpit:")
    env = environment(compose["services"]["notifier"])
    assert env["BILLING_SMTP_HOST"] == "mailpit"
    assert env["BILLING_SMTP_PORT"] in compose["services"]["mailpit"]["expose"]


def test_the_stripe_fake_signs_webhooks_with_the_secret_the_ingress_verifies(
    compose: dict[str, Any],
) -> None:
    stripe = compose["services"]["stripe"]
    module = stripe["entrypoint"][-1]
    assert importlib.util.find_spec(module) is not None, module
    command = stripe["command"]
    secret = command[command.index("--webhook-secret") + 1]
    port = command[command.index("--port") + 1]
    for worker in ("payments", "stripe-webhooks"):
        env = environment(compose["services"][worker])
        assert env["BILLING_STRIPE_WEBHOOK_SECRET"] == secret
        assert env["BILLING_STRIPE_API_BASE"] == f"http://stripe:{port}"
    ingress = environment(compose["services"]["stripe-webhooks"])
    registration = "\n".join(compose["services"]["stripe-webhook-endpoint"]["command"])
    url = f"http://stripe-webhooks:{ingress['BILLING_STRIPE_WEBHOOKS_PORT']}/stripe/webhook"
    assert url in registration
    assert ingress["BILLING_STRIPE_WEBHOOKS_HOST"] == "0.0.0.0"


def test_mounted_observability_files_exist(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source


def test_the_api_runs_like_a_worker_and_listens_on_all_interfaces(
    compose: dict[str, Any],
) -> None:
    api = compose["services"][API]
    assert billing_services(compose)[API]["command"] == ["run", "api"]
    env = environment(api)
    assert env["BILLING_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert "replicaSet=rs0" in env["BILLING_MONGO_URI"]
    assert env["BILLING_COMMAND_SIGNING_KEY"]  # it signs the commands it publishes
    assert env["BILLING_API_HOST"] == "0.0.0.0"
    assert env["BILLING_API_PORT"] == "8080"
    assert "8080" in api["expose"]
    assert api["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert api["depends_on"]["mongo"]["condition"] == "service_healthy"


def test_the_api_can_scale_and_its_healthcheck_asks_readyz_on_its_port(
    compose: dict[str, Any],
) -> None:
    api = compose["services"][API]
    assert "container_name" not in api
    assert all(":" not in str(port) for port in api.get("ports", [])), api["ports"]
    check = " ".join(api["healthcheck"]["test"])
    assert f"127.0.0.1:{environment(api)['BILLING_API_PORT']}/readyz" in check
