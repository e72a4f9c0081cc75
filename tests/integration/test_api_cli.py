"""The API's commands: `billing keys create|list|revoke` on the real database, `billing run
api` as its own OS process, `billing contracts export` writing the OpenAPI document."""

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from services.api.settings import ApiSettings
from services.cli import app
from services.devstack.ports import free_port
from tests.support.api import ApiHarness, api_harness
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration


def billing(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.stdout


async def status_with(token: str, drop: bool = False) -> int:
    """What `GET /v1/audit` answers `token` (then drop the test's database if `drop`)."""
    async with api_harness(ApiSettings()) as api:
        response = await api.client.get("/v1/audit", headers=ApiHarness.auth(token))
        if drop:
            await api.ctx.client.drop_database(api.ctx.settings.mongo_db)
    return response.status_code


def test_a_key_is_printed_once_listed_without_its_secret_and_revoked(
    billing_env: dict[str, str],
) -> None:
    created = json.loads(billing("keys", "create", "--role", "super", "--name", "ops",
                                 "--json"))
    token, key_id = created["key"], created["key_id"]
    assert token.startswith(f"{key_id}_")
    listed = billing("keys", "list", "--json")
    assert token.removeprefix(f"{key_id}_") not in listed
    [row] = json.loads(listed)
    assert (row["key_id"], row["role"], row["revoked_at"]) == (key_id, "super", None)
    assert "key" not in row and "secret_sha256" not in row
    assert key_id in billing("keys", "list")
    assert asyncio.run(status_with(token)) == 200
    billing("keys", "revoke", key_id)
    assert asyncio.run(status_with(token, drop=True)) == 401
    billing("keys", "revoke", "key_nope", code=1)


def test_plain_create_prints_only_the_key_on_stdout(billing_env: dict[str, str]) -> None:
    out = billing("keys", "create", "--role", "tenant", "--tenant", "acme", "--name", "acme")
    assert out.strip().startswith("key_") and len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [
    ["--role", "tenant", "--name", "n"],
    ["--role", "viewer", "--tenant", "acme", "--name", "n"],
    ["--role", "viewer", "--source", "s", "--name", "n"],
    ["--role", "root", "--name", "n"],
])
def test_a_key_whose_role_tenant_and_source_do_not_fit_is_refused(
    billing_env: dict[str, str], args: list[str],
) -> None:
    billing("keys", "create", *args, code=2)
    assert json.loads(billing("keys", "list", "--json")) == []


def test_contracts_export_writes_the_openapi_document(
    billing_env: dict[str, str], tmp_path: Path,
) -> None:
    billing("contracts", "export", str(tmp_path))
    document = json.loads((tmp_path / "openapi.json").read_text())
    assert document["openapi"].startswith("3.1")
    assert "/v1/audit" in document["paths"]


def test_run_api_without_a_signing_key_exits_2_naming_the_variable(
    subprocess_env: dict[str, str],
) -> None:
    env = {**subprocess_env, "BILLING_COMMAND_SIGNING_KEY": ""}
    done = subprocess.run([sys.executable, "-m", "services.cli", "run", "api"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "BILLING_COMMAND_SIGNING_KEY" in done.stderr


def test_run_api_serves_until_sigterm(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    env = {**subprocess_env, "BILLING_API_HOST": "127.0.0.1", "BILLING_API_PORT": str(port),
           "BILLING_SHUTDOWN_TIMEOUT_SECONDS": "5"}
    log = tmp_path / "api.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "services.cli", "run", "api"],
                                   env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(log.read_text(errors="replace")[-3000:])
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, what="/readyz answering 200", seconds=120, interval=0.25)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
