"""MongoDB of the embedded stack killed with SIGKILL and started again (`restart_mongodb`)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

from services.devstack.api import EmbeddedStack
from tests.support.fault_stack import own_stack, worker_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with own_stack(tmp_path_factory.mktemp("faults-mongodb")) as started:
        yield started


def test_a_restarted_mongodb_keeps_every_committed_write_on_the_same_port(
    stack: EmbeddedStack,
) -> None:
    env = worker_env(stack)
    before = stack.status()["mongodb"]
    client: MongoClient[dict[str, object]] = MongoClient(
        env["BILLING_MONGO_URI"], serverSelectionTimeoutMS=20_000
    )
    try:
        db = client[env["BILLING_MONGO_DB"]]
        db.plain.insert_one({"_id": "written alone"})
        with client.start_session() as session, session.start_transaction():
            db.txn.insert_many([{"_id": n} for n in range(50)], session=session)

        stack.restart_mongodb(down_seconds=0.5)

        after = stack.status()["mongodb"]
        assert after["running"] and after["port"] == before["port"]
        assert after["pid"] != before["pid"]
        assert client.admin.command("hello")["isWritablePrimary"]
        assert db.plain.count_documents({}) == 1
        assert db.txn.count_documents({}) == 50
    finally:
        client.close()


def test_restarting_mongodb_of_a_stack_that_is_not_up_names_the_missing_server(
    tmp_path: Path,
) -> None:
    from services.devstack.api import StackError

    with pytest.raises(StackError, match="no MongoDB"):
        EmbeddedStack(tmp_path).restart_mongodb()
