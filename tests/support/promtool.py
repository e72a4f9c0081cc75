"""Prometheus' own rule evaluation for the tests: `promtool test rules` on series built by a test.

promtool ships in Debian's `prometheus` package; `make install` extracts it into `.venv/bin`
(see the Makefile). A test that needs it fails, not skips, when it is missing. All groups of
one test run go to promtool in a single invocation (about 0.2 s plus the evaluation), and the
names of the groups it reports as failed come back, so each test can check its own groups.
"""

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

INTERVAL = "1m"
#: promtool starts the report of each failed check with `name: <group name>,`.
_FAILED_CHECK = re.compile(r"^\s*name: (.+),\s*$", re.MULTILINE)


def find() -> str:
    """Path of promtool: the one beside the running interpreter (`.venv/bin`), else on `PATH`.

    Fails the calling test (pytest.fail) when there is none, saying how to install it.
    """
    beside = Path(sys.executable).parent / "promtool"
    if beside.is_file():
        return str(beside)
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(f"promtool is neither in {beside.parent} nor on PATH: run `make install`, "
                    "which extracts it from Debian's prometheus package", pytrace=False)
    return found


@dataclass(frozen=True)
class Series:
    """One input series: its samples one `INTERVAL` apart from time 0, None where absent."""

    name: str
    labels: dict[str, str]
    values: list[float | None]

    def as_input(self) -> dict[str, str]:
        """The `input_series` entry of promtool's test file."""
        selector = ",".join(f"{key}={json.dumps(value)}" for key, value in
                            sorted(self.labels.items()))
        values = " ".join("_" if value is None else repr(value) for value in self.values)
        return {"series": f"{self.name}{{{selector}}}", "values": values}


@dataclass(frozen=True)
class Check:
    """At `minute`, alert `alert` is firing exactly with these label sets (none: silent).

    Each label set holds the series labels and the rule's own labels, without `alertname`.
    """

    minute: int
    alert: str
    firing: list[dict[str, str]]

    def as_test(self) -> dict[str, Any]:
        """The `alert_rule_test` entry of promtool's test file."""
        return {"eval_time": f"{self.minute}m", "alertname": self.alert,
                "exp_alerts": [{"exp_labels": labels} for labels in self.firing]}


@dataclass(frozen=True)
class Group:
    """A promtool test group: one timeline of series and the checks made on it."""

    name: str
    series: list[Series]
    checks: list[Check]

    def as_test(self) -> dict[str, Any]:
        """The `tests` entry of promtool's test file."""
        return {"name": self.name, "interval": INTERVAL,
                "input_series": [series.as_input() for series in self.series],
                "alert_rule_test": [check.as_test() for check in self.checks]}


@dataclass(frozen=True)
class Outcome:
    """What one promtool run reported: failed group name -> promtool's report of its checks."""

    failures: dict[str, str]

    @property
    def failed(self) -> frozenset[str]:
        """Names of the groups with at least one failed check."""
        return frozenset(self.failures)

    def report(self, names: list[str]) -> str:
        """promtool's report for the named groups, for an assertion message."""
        return "\n".join(self.failures[name] for name in names if name in self.failures)


def _failures(output: str) -> dict[str, str]:
    starts = list(_FAILED_CHECK.finditer(output))
    failures: dict[str, str] = {}
    for match, after in zip(starts, [*starts[1:], None], strict=True):
        block = output[match.start():after.start() if after else len(output)]
        failures[match.group(1)] = failures.get(match.group(1), "") + block
    return failures


def run_rule_tests(rules: dict[str, Any], groups: list[Group], workdir: Path) -> Outcome:
    """Run `promtool test rules` once with `rules` (a rule file's document) over `groups`.

    Group names must be unique and free of newlines. Raises AssertionError when promtool fails
    without naming a group (a rule file it cannot load, a malformed test file).
    """
    names = [group.name for group in groups]
    assert len(names) == len(set(names)), "group names must be unique"
    (workdir / "rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    (workdir / "tests.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"], "evaluation_interval": INTERVAL,
        "tests": [group.as_test() for group in groups]}), encoding="utf-8")
    result = subprocess.run([find(), "test", "rules", str(workdir / "tests.yml")],
                            capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    failures = _failures(output)
    assert (result.returncode == 0) == (not failures), output
    return Outcome(failures)


def check_rules(path: Path) -> str:
    """Run `promtool check rules` on a rule file; raises AssertionError with its output if bad."""
    result = subprocess.run([find(), "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
