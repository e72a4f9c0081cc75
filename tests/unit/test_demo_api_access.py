"""What the demo writes and prints about the Billing API: the keys file and the curl lines of
`--keep-running` (valid shell, the run's tenant and keys, a usage event the contract accepts)."""

import json
import shutil
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contracts.usage import UsageRecorded
from services import cli
from services.demo import cli as demo_cli
from services.demo.api_access import ApiKeys, curl_lines, summary_lines, write_keys
from services.demo.runner import DemoOptions, DemoResult

pytestmark = pytest.mark.unit

KEYS = ApiKeys(url="http://127.0.0.1:8123", super="bk_super", viewer="bk_viewer",
               ingest="bk_ingest", tenants={"acme-corp": "bk_acme", "globex": "bk_globex"})


def test_the_keys_file_holds_every_key_and_only_its_owner_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "out" / "api-keys.json"
    path.parent.mkdir()
    path.write_text("{}")
    path.chmod(0o644)  # an earlier run's file
    write_keys(KEYS, path)
    assert json.loads(path.read_text()) == {
        "url": "http://127.0.0.1:8123", "super": "bk_super", "viewer": "bk_viewer",
        "ingest": "bk_ingest", "tenants": {"acme-corp": "bk_acme", "globex": "bk_globex"}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_summary_names_the_url_the_viewer_key_and_the_keys_file(tmp_path: Path) -> None:
    text = "\n".join(summary_lines(KEYS, tmp_path / "api-keys.json"))
    assert "http://127.0.0.1:8123" in text
    assert "bk_viewer" in text
    assert str(tmp_path / "api-keys.json") in text


def run_lines(lines: list[str]) -> list[list[str]]:
    """Run `lines` in bash with curl replaced by a function printing its arguments; returns
    the arguments of each curl call."""
    script = "curl() { printf '%s\\0' \"$@\"; printf '\\n--\\n'; }\n" + "\n".join(
        line for line in lines if line.startswith(("export", "curl")))
    bash = shutil.which("bash")
    assert bash
    out = subprocess.run([bash, "-c", script], capture_output=True, check=True, text=True)
    return [[a for a in call.strip("\n").split("\0") if a]
            for call in out.stdout.split("\n--\n") if call.strip("\n")]


def test_the_curl_lines_call_each_endpoint_family_with_the_runs_keys(tmp_path: Path) -> None:
    calls = run_lines(curl_lines(KEYS, tmp_path / "api-keys.json", "INV-2013-0001"))
    urls = [next(a for a in call if a.startswith("http")) for call in calls]
    base = "http://127.0.0.1:8123"
    for path in ("/v1/tenants", "/v1/tenants/acme-corp", "/v1/tenants/acme-corp/balance",
                 "/v1/tenants/acme-corp/billing-config", "/v1/dashboard",
                 "/v1/invoices/INV-2013-0001", "/v1/invoices/INV-2013-0001/pdf",
                 "/v1/usage", "/v1/tenants/acme-corp/credits"):
        assert base + path in urls
    assert any(u.startswith(base + "/v1/tenants/acme-corp/usage?range=") for u in urls)
    auth = {a for call in calls for a in call if a.startswith("Authorization")}
    assert auth == {f"Authorization: Bearer {k}"
                    for k in ("bk_viewer", "bk_super", "bk_ingest", "bk_acme")}


def test_the_usage_curl_line_sends_an_event_the_contract_accepts(tmp_path: Path) -> None:
    as_of = datetime(2013, 10, 1, tzinfo=UTC)
    calls = run_lines(curl_lines(KEYS, tmp_path / "api-keys.json", as_of=as_of))
    (ingest,) = [c for c in calls if "http://127.0.0.1:8123/v1/usage" in c]
    event = UsageRecorded.model_validate_json(ingest[ingest.index("-d") + 1])
    assert event.subject == "acme-corp"
    assert event.time == datetime(2013, 9, 30, 23, tzinfo=UTC)
    assert "Content-Type: application/cloudevents+json" in ingest


def test_keep_running_reaches_the_demo_and_the_summary_prints_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[DemoOptions] = []

    class FakeDemo:
        def __init__(self, options: DemoOptions) -> None:
            seen.append(options)

        async def run(self) -> DemoResult:
            return DemoResult(summary={"settled": True}, api=KEYS)

    monkeypatch.setattr(demo_cli, "Demo", FakeDemo)
    result = CliRunner().invoke(cli.app, ["demo", "--out", str(tmp_path), "--keep-running"])
    assert result.exit_code == 0, result.output
    assert [o.keep_running for o in seen] == [True]
    assert "viewer key: bk_viewer" in result.output
    assert "API at http://127.0.0.1:8123" in result.output
    stopped = CliRunner().invoke(cli.app, ["demo", "--out", str(tmp_path)])
    assert [o.keep_running for o in seen] == [True, False]
    assert "--keep-running leaves it" in stopped.output
