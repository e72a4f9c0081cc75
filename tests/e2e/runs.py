"""Running `billing demo` as a subprocess for the end-to-end tests."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_demo(args: list[str], out: Path, timeout: float = 900) -> dict[str, Any]:
    """Run `billing demo ARGS --out OUT --json` (it starts its own embedded stack, so no
    `BILLING_*` variable of the caller is passed on); its narration is kept in
    `<out>-stderr.log`. Asserts exit 0 and returns the summary it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env["PYTHONPATH"] = str(ROOT)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        [sys.executable, "-m", "services.cli", "demo", *args, "--out", str(out), "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    (out.parent / f"{out.name}-stderr.log").write_text(proc.stderr)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary: dict[str, Any] = json.loads(proc.stdout[proc.stdout.index("{") :])
    return summary


def check_self_service(summary: dict[str, Any], out: Path) -> None:
    """The self-service step's promises in a demo's output: the plan catalog in
    `plans.json`, both new tenants active after their Checkout (their keys in
    `api-keys.json`), the limited tenant refused at its hard limit, and its 80 % and 100 %
    threshold emails among `emails/`."""
    section = summary["self_service"]
    assert section["problems"] == [] and section["clock"] == "wall"
    plans = json.loads((out / "plans.json").read_text())["plans"]
    assert [p["code"] for p in plans] == ["starter", "team", "business"]
    assert {p["code"]: p["version"] for p in section["plans"]} == {
        "starter": 1, "team": 1, "business": 1}
    starter = next(p for p in plans if p["code"] == "starter")
    assert starter["limits"] == [{"meter": "computations", "limit": "1000", "hard": True}]
    tenants = section["tenants"]
    assert set(tenants) == {"orbit-labs", "nova-analytics"}
    keys = json.loads((out / "api-keys.json").read_text())
    assert set(tenants) <= set(keys["tenants"])
    for tenant_id, plan in (("orbit-labs", "team"), ("nova-analytics", "starter")):
        found = tenants[tenant_id]
        assert found["plan_code"] == plan and found["status"] == "active", found
        assert found["checkout"] == "completed" and found["stripe_customer"].startswith("cus_")
        assert found["status_before_checkout"] == "incomplete"  # the webhook started it
    nova = tenants["nova-analytics"]
    assert nova["usage_events_accepted"] == 1000
    entitlement = nova["entitlement"]
    assert entitlement["allowed"] is False and entitlement["hard"] is True
    assert (entitlement["limit"], entitlement["used"], entitlement["remaining"]) == (
        "1000", "1000", "0")
    subjects = sorted(e["subject"] for e in nova["threshold_emails"])
    assert len(subjects) == 2
    assert "100 %" in subjects[0] and "80 %" in subjects[1], subjects
    for found_email in nova["threshold_emails"]:
        copied = out / "emails" / found_email["file"]
        assert copied.exists(), found_email
        assert found_email["to"] == "accounts@nova-analytics.example"
    assert summary["settled"] is True, summary["unsettled"]
