"""Examples as tests: each example with an `events/` folder has its `sensorium test` output checked in.

Layout of an example folder: the Sensor in a `*.yaml` file (the one holding `kind: Sensor`), its sample events
in `events/` (read in file-name order), optional `secrets/` (fake values, `<name>/<key>` files), and the
expected outputs in `expected/test.json` (`--output json`) and `expected/test.txt` (the human trace). After an
intended change, regenerate them with `python3 -m tests.test_examples` and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # runs `sensorium test` as a child process

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if (p / "events").is_dir())


def sensor_file(example: Path) -> Path:
    (found,) = [p for p in sorted(example.glob("*.yaml")) if "\nkind: Sensor" in p.read_text()]
    return found


def cli_args(example: Path, output: str) -> list[str]:
    args = [sys.executable, "-m", "engine.cli", "test", str(sensor_file(example).relative_to(ROOT))]
    for event_file in sorted((example / "events").iterdir()):
        args += ["--event", str(event_file.relative_to(ROOT))]
    if (example / "secrets").is_dir():
        args += ["--secrets-dir", str((example / "secrets").relative_to(ROOT))]
    return [*args, "--output", output]


def run_test_command(example: Path, output: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(cli_args(example, output), cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def test_every_example_has_events_and_expected_outputs() -> None:
    assert {p.name for p in EXAMPLES} >= {"quickstart", "two-dependencies", "filters", "secure-header"}
    for example in EXAMPLES:
        assert (example / "expected" / "test.json").is_file(), example
        assert (example / "expected" / "test.txt").is_file(), example


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_json_output(example: Path) -> None:
    done = run_test_command(example, "json")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (example / "expected" / "test.json").read_text()
    json.loads(done.stdout)  # exactly one JSON object


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_text_output(example: Path) -> None:
    done = run_test_command(example, "text")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (example / "expected" / "test.txt").read_text()


def test_example_secrets_never_printed() -> None:
    example = ROOT / "examples" / "secure-header"
    secrets = [p.read_text().strip() for p in (example / "secrets").rglob("*") if p.is_file()]
    assert secrets
    for output in ("json", "text"):
        done = run_test_command(example, output)
        for secret in secrets:
            assert secret not in done.stdout + done.stderr


def regenerate() -> None:
    for example in EXAMPLES:
        (example / "expected").mkdir(exist_ok=True)
        for output, name in (("json", "test.json"), ("text", "test.txt")):
            done = run_test_command(example, output)
            if done.returncode != 0:
                raise SystemExit(f"{example.name}: exit {done.returncode}\n{done.stderr}")
            (example / "expected" / name).write_text(done.stdout)
            print(f"wrote {(example / 'expected' / name).relative_to(ROOT)}")


if __name__ == "__main__":
    regenerate()
