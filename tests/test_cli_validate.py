"""`sensorium validate`: every problem as FILE:LINE: field.path: message (exit 2), or a summary (exit 0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorium.engine.cli import main

GOOD_SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: good}
spec:
  dependencies: [{name: d, eventSourceName: hook, eventName: e}]
  triggers: [{template: {name: t, log: {}}}]
"""
GOOD_SOURCE = """\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: hook}
spec:
  webhook:
    e: {port: "12000", endpoint: /e}
"""
BAD_SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: bad}
spec:
  dependencies:
    - name: d
      eventSourceName: hook
      eventName: e
      filters:
        data:
          - path: body.x
            type: numbr
            value: ["1"]
  triggers:
    - template:
        name: t
        http: {url: "http://x", method: FETCH}
"""


def run(capsys: pytest.CaptureFixture[str], *paths: Path | str) -> tuple[int, str, str]:
    code = main(["validate", *map(str, paths)])
    out, err = capsys.readouterr()
    return code, out, err


def test_valid_documents_print_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sensor.yaml").write_text(GOOD_SENSOR)
    (tmp_path / "source.yml").write_text(GOOD_SOURCE)
    code, out, err = run(capsys, tmp_path)
    assert (code, err) == (0, "")
    assert out == "ok: 2 files, 1 Sensor (good); 1 EventSource (hook)\n"


def test_every_problem_in_every_file_is_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(BAD_SENSOR)
    (tmp_path / "b.yaml").write_text("- not\n- a mapping\n---\n" + GOOD_SENSOR)
    (tmp_path / "c.yaml").write_text(GOOD_SENSOR)  # same name as b's sensor
    code, out, err = run(capsys, tmp_path, tmp_path / "missing.yaml")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"{tmp_path}/missing.yaml:0: no such file or directory",
        f"{tmp_path}/a.yaml:12: spec.dependencies[0].filters.data[0].type: input should be 'string', 'number' "
        "or 'bool'",
        f"{tmp_path}/a.yaml:17: spec.triggers[0].template.http.method: only GET, DELETE, PATCH, POST and PUT "
        "methods are supported",
        f"{tmp_path}/b.yaml:1: a document must be a mapping, got list",
        f"{tmp_path}/c.yaml:3: metadata.name: duplicate Sensor name 'good' (first at {tmp_path}/b.yaml:4)",
        "5 problems found",
    ]


def test_a_folder_without_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    code, _, err = run(capsys, tmp_path)
    assert code == 2
    assert err.splitlines()[0] == f"{tmp_path}:0: no .yaml or .yml files found"
