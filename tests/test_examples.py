"""Examples as tests: every example with a Sensor has a `tests.yaml` cases file, run through the CLI as CI runs it.

Layout of an example folder: the Sensor in a `*.yaml` file, sample events in `events/`, optional `secrets/` (fake
values, `<name>/<key>` files), and `tests.yaml`: the cases `sensorium test examples/X/tests.yaml` checks (which
triggers fire, with which request, which filter rejected an event). A failed expectation exits 1 and fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # runs `sensorium test` as a child process

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if (p / "events").is_dir())


def sensorium(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "sensorium", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def test_every_example_has_test_cases() -> None:
    assert {p.name for p in EXAMPLES} >= {"quickstart", "two-dependencies", "filters", "secure-header"}
    for example in EXAMPLES:
        assert (example / "tests.yaml").is_file(), example
        assert not (example / "expected").exists(), f"{example}: expectations live in tests.yaml"


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_cases_pass(example: Path) -> None:
    done = sensorium("test", str((example / "tests.yaml").relative_to(ROOT)))
    assert (done.returncode, done.stderr) == (0, ""), done.stdout
    lines = done.stdout.splitlines()
    assert lines[-1].endswith(" passed, 0 failed")
    assert all(line.startswith("PASS  ") for line in lines[1:-1])


def test_all_examples_at_once_with_a_junit_report(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    files = [str((e / "tests.yaml").relative_to(ROOT)) for e in EXAMPLES]
    done = sensorium("test", *files, "--junit", str(report), "--output", "json")
    assert (done.returncode, done.stderr) == (0, "")
    result = json.loads(done.stdout)
    assert result["passed"] is True
    cases = sum(len(s["cases"]) for s in result["suites"])
    root = ET.parse(report).getroot()
    assert (root.tag, root.get("tests"), root.get("failures")) == ("testsuites", str(cases), "0")
    assert [s.get("name") for s in root.iter("testsuite")] == files
    assert len(list(root.iter("testcase"))) == cases and not list(root.iter("failure"))


def test_a_changed_expectation_fails_with_a_diff_naming_it(tmp_path: Path) -> None:
    """The same example with one expected value changed: exit 1, and the diff says which field differs."""
    example = ROOT / "examples" / "two-dependencies"
    text = (example / "tests.yaml").read_text()
    assert "paid: 12.5}" in text
    broken = tmp_path / "tests.yaml"
    broken.write_text(text.replace("sensor: sensor.yaml", f"sensor: {example / 'sensor.yaml'}")
                      .replace("events/", f"{example}/events/").replace("paid: 12.5}", "paid: 13}"))
    done = sensorium("test", str(broken))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL  a settled payment after the order ships it, with both events' data" in done.stdout
    assert "ship firing #1: body.paid: expected 13, got 12.5" in done.stdout
    assert '-    "paid": 13\n' in done.stdout.replace("        -", "-")
    assert '+    "paid": 12.5\n' in done.stdout.replace("        +", "+")
    assert done.stdout.splitlines()[-1] == "3 case(s): 2 passed, 1 failed"


def test_example_secrets_never_printed(tmp_path: Path) -> None:
    example = ROOT / "examples" / "secure-header"
    secrets = [p.read_text().strip() for p in (example / "secrets").rglob("*") if p.is_file()]
    assert secrets
    cases = str((example / "tests.yaml").relative_to(ROOT))
    for args in (["--output", "json"], ["--output", "text"], ["--junit", str(tmp_path / "r.xml")]):
        done = sensorium("test", cases, *args)
        assert done.returncode == 0
        shown = done.stdout + done.stderr + ((tmp_path / "r.xml").read_text() if "--junit" in args else "")
        assert "***" in shown or "--output" not in args or args[1] == "text"
        for secret in secrets:
            assert secret not in shown


def test_the_readme_cases_file_passes(tmp_path: Path) -> None:
    """The cases file the README shows runs as written against examples/two-dependencies."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```yaml\nsensor: sensor.yaml\ncases:") + len("```yaml\n")
    text = readme[start:readme.index("```", start)]
    example = ROOT / "examples" / "two-dependencies"
    path = tmp_path / "tests.yaml"
    path.write_text(text.replace("sensor: sensor.yaml", f"sensor: {example / 'sensor.yaml'}")
                    .replace("events/", f"{example}/events/"))
    done = sensorium("test", str(path))
    assert (done.returncode, done.stderr) == (0, ""), done.stdout
    assert "PASS  a settled payment after the order ships it" in done.stdout


def test_run_and_validate_skip_cases_files_in_a_directory() -> None:
    """`sensorium run examples/quickstart` (the README's quickstart) loads the folder whose tests.yaml sits beside
    the sensor: directories skip cases files; a cases file named explicitly is still refused (no kind)."""
    done = sensorium("validate", "examples/quickstart")
    assert (done.returncode, done.stdout) == (0, "ok: 2 files, 1 Sensor (webhook); 1 EventSource (webhook)\n")
    done = sensorium("validate", "examples/quickstart/tests.yaml")
    assert done.returncode == 2 and "missing kind" in done.stderr
