"""Malformed configuration files: `sensorium validate` (and `run`, and `test` loading a sensor) answer every one
with exit 2 and `FILE:LINE: message` lines, never a traceback, each within a few seconds.

The corpus is tests/corpus/make_config_corpus.py (generated here into tmp_path, big files included) plus the
hand-written files in tests/corpus/config/; a hypothesis test mutates the example files.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sensorium.engine.cli import main
from sensorium.engine.config import is_test_cases
from tests.corpus.make_config_corpus import ROOT, Case, cases, hand_written

SECONDS = 5.0  # per file, in process; generous for a shared 2-core machine (most take 10-50 ms)
CASES = cases() + hand_written()


class Hang(BaseException):
    """Raised by the alarm: not an Exception, so that nothing in the engine can swallow it."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang


def validate(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str, str, float]:
    """`sensorium validate PATH` in this process, interrupted after SECONDS."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, SECONDS)
    start = time.monotonic()
    try:
        code = main(["validate", str(path)])
    except Hang:
        pytest.fail(f"validate {path.name} still running after {SECONDS} s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.monotonic() - start
    out, err = capsys.readouterr()
    return code, out, err, elapsed


def assert_refused(path: Path, code: int, out: str, err: str) -> None:
    """Exit 2, nothing on stdout, every line `FILE:LINE: ...` but the closing count, no traceback."""
    assert "Traceback" not in out + err
    assert code == 2, (out, err)
    assert out == ""
    lines = err.splitlines()
    assert re.fullmatch(r"\d+ problems? found", lines[-1]), lines[-1]
    form = re.compile(re.escape(str(path)) + r":\d+: \S")
    for line in lines[:-1]:
        assert form.match(line), line


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("corpus")
    for case in CASES:
        (directory / f"{case.name}.yaml").write_bytes(case.data)
    return directory


def test_the_corpus_holds_hundreds_of_files() -> None:
    assert len(CASES) >= 300
    assert len(hand_written()) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validate_refuses_with_file_and_line(case: Case, corpus_dir: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = corpus_dir / f"{case.name}.yaml"
    code, out, err, elapsed = validate(capsys, path)
    assert_refused(path, code, out, err)
    assert case.expect in err.replace(str(path), ""), err
    assert elapsed < SECONDS


# ---- real processes: what a user's terminal shows --------------------------------------------------------

SUBPROCESS_CASES = ["tag-python-object-apply-os.system", "huge-file-20mb", "list-300000", "documents-3000",
                    "merge-chain-3000", "deep-flow-list-100000", "billion-laughs", "utf16-le-no-bom",
                    "condition-3000-parens", "expr-3000-parens", "key-complex-list-key-top", "kind-kind-list",
                    "surrogate-escape-ud800", "no-documents-only-separator", "env-unclosed"]


def sensorium(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "sensorium", *args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=cwd)
    return done, time.monotonic() - start


@pytest.mark.integration  # starts a child process
@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_validate_in_a_real_process(name: str, corpus_dir: Path) -> None:
    path = corpus_dir / f"{name}.yaml"
    done, elapsed = sensorium("validate", str(path), cwd=corpus_dir)
    assert_refused(path, done.returncode, done.stdout, done.stderr)
    assert elapsed < 15  # interpreter start-up included


@pytest.mark.integration  # starts a child process
@pytest.mark.parametrize("name", ["tag-python-object-apply-os.system", "documents-3000", "deep-block-map-2000",
                                  "merge-bomb", "key-int-key"])
def test_run_refuses_before_starting_anything(name: str, corpus_dir: Path, tmp_path: Path) -> None:
    path = corpus_dir / f"{name}.yaml"
    done, _ = sensorium("run", str(path), "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert "Traceback" not in done.stderr
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"{path}:"), done.stderr
    assert not (tmp_path / "data").exists()  # refused before the embedded bus was started


@pytest.mark.integration  # starts a child process
@pytest.mark.parametrize("name", ["tag-python-name-os.system", "deep-flow-map-2000", "condition-100000-parens",
                                  "invalid-utf8-latin1"])
def test_dry_run_refuses_the_sensor_file(name: str, corpus_dir: Path, tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"specversion": "1.0", "id": "1", "source": "shop", "subject": "created", "type": "t"}')
    path = corpus_dir / f"{name}.yaml"
    done, _ = sensorium("test", str(path), "--event", str(event), cwd=tmp_path)
    assert "Traceback" not in done.stderr
    assert done.returncode == 2, done.stderr
    assert re.match(re.escape(str(path)) + r":\d+: ", done.stderr), done.stderr


# ---- generated mutations of the examples ------------------------------------------------------------------

EXAMPLES = sorted(p for p in (ROOT / "examples").rglob("*.yaml") if not is_test_cases(p))
TAGS = ["!!python/object/apply:os.system", "!!python/name:os.system", "!foo", "!!binary", "!!set", "!!str", "!!int",
        "!!map", "!!seq", "!", "!!timestamp", "!<tag:yaml.org,2002:python/none>"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """An example file with one to three of: a byte changed, inserted or removed, truncation, a line re-indented or
    duplicated (duplicate keys), a tag before a value, a `${` fragment, deep brackets."""
    data = bytearray(EXAMPLES[draw(st.integers(0, len(EXAMPLES) - 1))].read_bytes())
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        lines = bytes(data).split(b"\n")
        row = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "indent", "duplicate", "tag", "env",
                                     "deep"]))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = bytes([draw(st.integers(0, 255))])
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        elif kind == "truncate":
            del data[at:]
        elif kind in ("indent", "duplicate", "tag"):
            line = lines[row]
            if kind == "indent":
                lines[row] = b" " * draw(st.integers(0, 9)) + line.lstrip(b" ")
            elif kind == "duplicate":
                lines.insert(row, line)
            elif b": " in line:
                key, value = line.split(b": ", 1)
                lines[row] = key + b": " + draw(st.sampled_from(TAGS)).encode() + b" " + value
            data = bytearray(b"\n".join(lines))
        elif kind == "env":
            data[at:at] = draw(st.sampled_from([b"${", b"${X", b"${}", b"${1}", b"${X:-", b"${HOME"]))
        else:
            depth = draw(st.integers(50, 3000))
            data[at:at] = b"[" * depth + b"]" * depth
    return bytes(data)


@pytest.mark.slow  # fuzz (hypothesis)
@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@example(data=b"apiVersion: argoproj.io/v1alpha1\nkind: Sensor\nmetadata: {name: \xed\xa0\x80}\n")
@given(data=mutated())
def test_mutated_examples_never_get_a_traceback(data: bytes, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mutated.yaml"
    path.write_bytes(data)
    code, out, err, elapsed = validate(capsys, path)
    if code == 0:
        assert out.startswith("ok: 1 file, ") and "Traceback" not in err
    else:
        assert_refused(path, code, out, err)
    assert elapsed < SECONDS
