"""Loading configuration: every invalid input is a `FILE:LINE: field: message`, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sensorium.engine.assemble import check_document
from sensorium.engine.config import ConfigErrors, load

SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: s
spec:
  dependencies:
    - name: dep1
      eventSourceName: webhook
      eventName: example
  triggers:
    - template:
        name: t
        http:
          url: ${SINK_URL:-http://localhost:9000}/x
"""


def errors_for(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigErrors) as info:
        load([path], environ=env or {}, checks=[check_document])
    return [e.render().replace(str(tmp_path) + "/", "") for e in info.value.errors]


def test_valid_sensor_loads_with_env_substitution(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(SENSOR)
    config = load([path], environ={"SINK_URL": "http://sink:1"}, checks=[check_document])
    (sensor, origin), = config.sensors
    assert sensor.spec.triggers[0].template.http is not None
    assert sensor.spec.triggers[0].template.http.url == "http://sink:1/x"
    assert origin.line == 1
    assert load([path], environ={}).sensors[0][0].spec.triggers[0].template.http.url == "http://localhost:9000/x"


def test_unset_variable_names_line(tmp_path: Path) -> None:
    assert errors_for(tmp_path, SENSOR.replace("${SINK_URL:-http://localhost:9000}", "${NOPE}")) == [
        "bad.yaml:14: environment variable ${NOPE} is not set"]


def test_yaml_syntax_error(tmp_path: Path) -> None:
    (error,) = errors_for(tmp_path, SENSOR.replace("name: t", "name: [t"))
    assert error.startswith("bad.yaml:1") and "invalid YAML" in error


def test_unknown_field_missing_field_wrong_type(tmp_path: Path) -> None:
    text = SENSOR.replace("      eventName: example\n", "      eventNme: example\n").replace(
        "name: t\n", "name: t\n        conditions: 5\n")
    assert errors_for(tmp_path, text) == [
        "bad.yaml:9: spec.dependencies[0].eventNme: unknown field; did you mean eventName?",
        "bad.yaml:13: spec.triggers[0].template.conditions: input should be a valid string",
    ]


def test_unknown_kind_and_non_mapping(tmp_path: Path) -> None:
    text = SENSOR.replace("kind: Sensor", "kind: Sensr") + "---\n- just a list\n"
    assert errors_for(tmp_path, text) == [
        "bad.yaml:2: kind: unknown kind 'Sensr' (want Sensor, EventSource or EventBus)",
        "bad.yaml:16: a document must be a mapping, got list",
    ]


def test_invalid_regex_is_rejected(tmp_path: Path) -> None:
    text = SENSOR.replace("      eventName: example\n", """      eventName: example
      filters:
        data:
          - path: body.a
            type: string
            value: ["ok", "(unclosed"]
""")
    (error,) = errors_for(tmp_path, text)
    assert error.startswith("bad.yaml:1") and "spec.dependencies[0].filters.data[0]" in error
    assert "(unclosed" in error


def test_unknown_dependency_in_conditions(tmp_path: Path) -> None:
    (error,) = errors_for(tmp_path, SENSOR.replace("name: t\n", "name: t\n        conditions: dep1 && nope\n"))
    assert error.startswith("bad.yaml:")
    assert "nope" in error


def test_unsupported_trigger_kind_names_the_trigger(tmp_path: Path) -> None:
    text = SENSOR.replace("        http:\n          url: ${SINK_URL:-http://localhost:9000}/x\n",
                          "        slack:\n          channel: general\n")
    (error,) = errors_for(tmp_path, text)
    assert error == "bad.yaml:13: spec.triggers[0].template: trigger type slack is not supported (trigger 't')"


@pytest.mark.integration  # starts a child process
def test_cli_exit_code_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SENSOR.replace("      eventName: example\n", ""))
    proc = subprocess.run([sys.executable, "-m", "sensorium", "run", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{path}:7: spec.dependencies[0].eventName: required field is missing"
    assert "Traceback" not in proc.stderr + proc.stdout
