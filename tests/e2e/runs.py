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
