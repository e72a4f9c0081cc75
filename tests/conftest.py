"""Fixtures every test tier shares.

`servers` is started once per session (see `tests/support/servers.py` for the order in which
servers are found). `billing_env` gives each test its own MongoDB database and topic prefix,
sets the `BILLING_*` variables for in-process code and returns them for subprocesses, so tests
are independent and run in any order.
"""

import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.common.mongo import CODEC_OPTIONS
from services.common.settings import CommonSettings
from tests.support.servers import Servers, start_test_servers

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the repository (input data; never copied into the project)."""
    assert SHARED_DATA.is_dir(), f"{SHARED_DATA} is missing: clone with ../shared beside it"
    return SHARED_DATA


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """The session's Kafka and MongoDB."""
    with start_test_servers(tmp_path_factory.mktemp("stack")) as found:
        yield found


@pytest.fixture
def billing_env(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """`BILLING_*` variables for this test: its own database and topic names.

    Also set in `os.environ` (undone after the test); pass the returned dict, merged over
    `os.environ`, to subprocesses.
    """
    tag = uuid.uuid4().hex[:10]
    env = {
        "BILLING_KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
        "BILLING_MONGO_URI": servers.mongo_uri,
        "BILLING_MONGO_DB": f"test_{tag}",
        "BILLING_TOPIC_PREFIX": f"t{tag}.",
        "BILLING_LOG_JSON": "true",
        "BILLING_COMMAND_SIGNING_KEY": f"test-command-signing-key-{uuid.uuid4().hex}",
        # the API's dead-letter consumer only where a test asks for it (`dead_letter_api`):
        # an API stopped while its consumer still joins the group waits seconds for it
        "BILLING_API_DEAD_LETTER_CONSUMER": "false",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def subprocess_env(billing_env: dict[str, str]) -> dict[str, str]:
    """The environment for a worker subprocess: this interpreter's, plus `billing_env`."""
    env = dict(os.environ)
    env.update(billing_env)
    env["PYTHONPATH"] = str(ROOT)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture
def common_settings(billing_env: dict[str, str]) -> CommonSettings:
    """`CommonSettings` for this test's database and topics."""
    return CommonSettings()


@pytest.fixture
async def mongo_db(common_settings: CommonSettings) -> AsyncIterator[Any]:
    """This test's MongoDB database (async, Decimal codec, tz-aware); dropped afterwards."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        common_settings.mongo_uri, tz_aware=True
    )
    db = client.get_database(common_settings.mongo_db, codec_options=CODEC_OPTIONS)
    yield db
    await client.drop_database(common_settings.mongo_db)
    await client.close()


def pytest_configure(config: pytest.Config) -> None:
    """Give every process of the run the same chaos row file (`tests/support/chaos.py`): the
    controlling process creates it, pytest-xdist workers receive it in `workerinput`."""
    from tests.support import chaos

    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None:
        chaos.SINK = Path(worker_input["chaos_rows"])
        return
    fd, name = tempfile.mkstemp(prefix="chaos-rows-", suffix=".jsonl")
    os.close(fd)
    chaos.SINK = Path(name)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: hand the chaos row file to a starting worker."""
    from tests.support import chaos

    node.workerinput["chaos_rows"] = str(chaos.SINK)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the chaos row file (controlling process only)."""
    from tests.support import chaos

    if getattr(config, "workerinput", None) is None and chaos.SINK is not None:
        chaos.SINK.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the faults the chaos scenarios survived (`tests/support/chaos.py`), if any ran."""
    from tests.support import chaos

    lines = chaos.table()
    if lines:
        terminalreporter.section("faults survived")
        for line in lines:
            terminalreporter.write_line(line)
