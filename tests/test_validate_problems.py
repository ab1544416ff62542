"""`sensorium validate` finds what bites at run time: every problem of a file in one run, each at its culprit's
line, "did you mean" for typos, checks across documents (errors and marked warnings), and json/github output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sensorium.engine.cli import main

SOURCE = """\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: webhook}
spec:
  webhook:
    example: {port: "12000", endpoint: /example, method: POST}
"""
SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: s}}
spec:
  dependencies:
    - name: a
      eventSourceName: webhook
      eventName: {event}
  triggers:
    - template:
        name: t
        log: {{}}
"""
BROKEN = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: broken}
spec:
  dependencies:
    - name: a
      eventSourceName: webhook
      eventName: example
      filters:
        data:
          - {path: body.x, type: number, comparator: "=~", value: ["1"]}
          - {path: body.y, type: number, value: ["("]}
    - name: b
      eventSourceName: webhook
      eventNme: example
    - name: d
      eventSourceName: webhook
      eventName: example
      filters:
        exprs:
          - {expr: "y <", fields: [{name: y, path: body.y}]}
  triggers:
    - template:
        name: t
        conditions: "a && c"
        log: {}
"""


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["validate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_structural_error_hides_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    code, out, err = run(capsys, path)
    assert (code, out) == (2, "")
    lines = [line.replace(f"{path}:", "") for line in err.splitlines()]
    assert lines[:3] == [
        "11: spec.dependencies[0].filters.data[0].comparator: input should be '>=', '>', '=', '!=', '<', '<=' or ''",
        '12: spec.dependencies[0].filters.data[1].value[0]: value \'(\' is not a number (type is number): '
        'strconv.ParseFloat: parsing "(": invalid syntax',
        "15: spec.dependencies[1].eventNme: unknown field; did you mean eventName?",
    ]
    assert lines[3].startswith("25: spec.triggers[0].template.conditions: trigger 't': conditions 'a && c', "
                               "column 6: unknown dependency 'c'")
    # a valid part's own load checks
    assert lines[4].startswith("21: spec.dependencies[2].filters.exprs[0].expr: expression 'y <' does not compile")
    assert lines[5] == "5 problems found"
    assert "required field is missing" not in err  # eventNme is one mistake, not two


def test_a_bad_condition_is_reported_at_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SENSOR.format(event="example").replace("name: t\n", "name: t\n        conditions: a ||\n"))
    code, _, err = run(capsys, path)
    assert code == 2
    assert err.splitlines()[0].startswith(f"{path}:12: spec.triggers[0].template.conditions: trigger 't': ")


def test_an_event_name_the_source_does_not_emit_is_a_warning_with_a_suggestion(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "source.yaml").write_text(SOURCE)
    (tmp_path / "sensor.yaml").write_text(SENSOR.format(event="Example"))
    code, out, err = run(capsys, tmp_path)
    assert (code, out) == (0, "ok: 2 files, 1 Sensor (s); 1 EventSource (webhook); 1 warning\n")
    assert err.splitlines() == [
        f"{tmp_path}/sensor.yaml:8: warning: spec.dependencies[0].eventName: EventSource 'webhook' emits no event "
        "'Example' (its events: example); did you mean example?"]


def test_a_source_that_is_not_loaded_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "source.yaml").write_text(SOURCE)
    (tmp_path / "sensor.yaml").write_text(SENSOR.format(event="example").replace("Name: webhook", "Name: webhok"))
    code, out, err = run(capsys, tmp_path)
    assert code == 0
    assert out == "ok: 2 files, 1 Sensor (s); 1 EventSource (webhook); 1 warning\n"
    assert err == (f"{tmp_path}/sensor.yaml:7: warning: spec.dependencies[0].eventSourceName: no loaded EventSource "
                   "is named 'webhok' (loaded: webhook); did you mean webhook?\n")
    # a sensor checked on its own: nothing to compare its dependencies with
    code, out, err = run(capsys, tmp_path / "sensor.yaml")
    assert (code, err) == (0, "")


def test_two_webhooks_on_one_port_and_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(SOURCE)
    (tmp_path / "b.yaml").write_text(SOURCE.replace("webhook}", "other}").replace("example:", "again:"))
    code, _, err = run(capsys, tmp_path)
    assert code == 2
    assert err.splitlines()[0] == (
        f"{tmp_path}/b.yaml:6: spec.webhook.again.endpoint: port 12000 endpoint /example is already served by "
        f"EventSource 'webhook' event 'example' ({tmp_path}/a.yaml:6)")


def test_json_and_github_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "source.yaml").write_text(SOURCE)
    sensor = SENSOR.format(event="Example").replace("    - name: a\n", "    - name: b\n      eventSourceName: "
                                                     "nowhere\n      eventName: x\n    - name: a\n")
    (tmp_path / "sensor.yaml").write_text(sensor)
    code, out, err = run(capsys, "--format", "json", tmp_path)
    assert (code, err) == (0, "")
    assert sorted(json.loads(out), key=lambda p: p["line"], reverse=True) == [
        {"file": f"{tmp_path}/sensor.yaml", "line": 11, "path": "spec.dependencies[1].eventName",
         "severity": "warning",
         "message": "EventSource 'webhook' emits no event 'Example' (its events: example); did you mean example?"},
        {"file": f"{tmp_path}/sensor.yaml", "line": 7, "path": "spec.dependencies[0].eventSourceName",
         "severity": "warning", "message": "no loaded EventSource is named 'nowhere' (loaded: webhook)"}]
    code, out, err = run(capsys, "--format", "github", tmp_path)
    assert (code, err) == (0, "")
    assert sorted(out.splitlines(), key=lambda line: "line=11" not in line) == [
        f"::warning file={tmp_path}/sensor.yaml,line=11::spec.dependencies[1].eventName: EventSource 'webhook' emits "
        "no event 'Example' (its events: example); did you mean example?",
        f"::warning file={tmp_path}/sensor.yaml,line=7::spec.dependencies[0].eventSourceName: no loaded "
        "EventSource is named 'nowhere' (loaded: webhook)"]
    code, out, _ = run(capsys, "--format", "json", tmp_path / "source.yaml")
    assert (code, json.loads(out)) == (0, [])


def test_github_escapes_what_would_break_an_annotation() -> None:
    from sensorium.engine.core.errors import ConfigError
    from sensorium.engine.validate import github_annotation

    problem = ConfigError("50% bad\nsecond line", "dir,x/a:b.yaml", 3, "spec")
    assert github_annotation(problem) == "::error file=dir%2Cx/a%3Ab.yaml,line=3::spec: 50%25 bad%0Asecond line"
