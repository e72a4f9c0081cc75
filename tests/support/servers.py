"""Where the test servers come from, in this order:

1. explicit `BILLING_TEST_KAFKA_BOOTSTRAP_SERVERS` / `BILLING_TEST_MONGO_URI` (external servers);
2. testcontainers (`apache/kafka`, `mongo` as a single-node replica set) when a Docker daemon
   answers;
3. the embedded stack (tansu, SecantusDB) started from this repository's own code.

The SMTP sink is always aiosmtpd (a Python library), started per test where needed.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.polling import wait_until


@dataclass(frozen=True)
class Servers:
    """Addresses of the session's Kafka and MongoDB, and which kind they are."""

    kafka_bootstrap_servers: str
    mongo_uri: str
    kind: str  # "external" | "testcontainers" | "embedded"


def _docker_answers() -> bool:
    if os.environ.get("BILLING_TEST_NO_DOCKER"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
        return True
    except Exception:
        return False


@contextmanager
def _testcontainers() -> Iterator[Servers]:
    from pymongo import MongoClient
    from testcontainers.core.container import DockerContainer
    from testcontainers.kafka import KafkaContainer

    kafka = KafkaContainer(os.environ.get("BILLING_TEST_KAFKA_IMAGE", "apache/kafka:3.9.0"))
    mongo = (
        DockerContainer(os.environ.get("BILLING_TEST_MONGO_IMAGE", "mongo:8"))
        .with_command("--replSet rs0 --bind_ip_all")
        .with_exposed_ports(27017)
    )
    with kafka, mongo:
        host, port = mongo.get_container_host_ip(), mongo.get_exposed_port(27017)
        uri = f"mongodb://{host}:{port}/?directConnection=true"
        client: MongoClient[dict[str, object]] = MongoClient(uri, serverSelectionTimeoutMS=30_000)
        client.admin.command(
            "replSetInitiate", {"_id": "rs0", "members": [{"_id": 0, "host": "localhost:27017"}]}
        )
        wait_until(lambda: client.admin.command("hello").get("isWritablePrimary"),
                   what="a primary elected in the MongoDB replica set", seconds=60)
        client.close()
        yield Servers(kafka.get_bootstrap_server(), uri, "testcontainers")


@contextmanager
def _embedded(directory: Path) -> Iterator[Servers]:
    from services.devstack.stack import EmbeddedStack

    stack = EmbeddedStack(directory)
    try:
        state = stack.up(timeout=90)
        env = state.env(stack.directory)
        yield Servers(env["BILLING_KAFKA_BOOTSTRAP_SERVERS"], env["BILLING_MONGO_URI"], "embedded")
    finally:
        stack.down()


@contextmanager
def start_test_servers(directory: Path) -> Iterator[Servers]:
    """Start (or find) the session's Kafka and MongoDB; stop what was started on exit."""
    kafka = os.environ.get("BILLING_TEST_KAFKA_BOOTSTRAP_SERVERS")
    mongo = os.environ.get("BILLING_TEST_MONGO_URI")
    if kafka and mongo:
        yield Servers(kafka, mongo, "external")
    elif _docker_answers():
        with _testcontainers() as servers:
            yield servers
    else:
        with _embedded(directory) as servers:
            yield servers
