"""Sensor document models: what loads, what is rejected and with which message."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from sensorium.sensors.spec import ContextFilter, DataFilter, Sensor, TimeFilter
from tests.sensors.builders import dep, sensor, trigger

UPSTREAM = """
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: webhook
  namespace: argo-events
  labels: {app: demo}
  uid: extra-metadata-is-allowed
spec:
  replicas: 2
  revisionHistoryLimit: 3
  template:
    serviceAccountName: operate-workflow-sa
  loggingFields: {team: a}
  errorOnFailedRound: true
  dependencies:
    - name: test-dep
      eventSourceName: webhook
      eventName: example
      filtersLogicalOperator: or
      transform:
        jq: ".body.message *= 2"
      filters:
        time: {start: "02:30:00", stop: "04:30:00", timezone: America/New_York}
        context: {source: custom-webhook, datacontenttype: application/json, time: 2024-01-01T00:00:00Z}
        dataLogicalOperator: or
        exprLogicalOperator: and
        script: "if event.body.a == 'b' then return true else return false end"
        data:
          - path: body.value
            type: number
            comparator: ">"
            value: ["50.0"]
          - path: 'a\\.b'
            type: string
            value: ["^hello", "hey"]
            template: "{{ b64dec .Input }}"
        exprs:
          - expr: a == "b" || c == 10
            fields:
              - {name: a, path: a}
              - {name: c, path: a-longer-name}
  triggers:
    - template:
        name: log-trigger
        conditions: "test-dep"
        log: {intervalSeconds: 20}
"""


def test_upstream_features_all_parse() -> None:
    doc = Sensor.model_validate(yaml.safe_load(UPSTREAM))
    dependency = doc.spec.dependencies[0]
    assert (doc.metadata.name, doc.metadata.namespace) == ("webhook", "argo-events")
    assert doc.spec.event_bus_name == "default"
    assert dependency.filters is not None and dependency.filters.data is not None
    assert [f.path for f in dependency.filters.data] == ["body.value", "a\\.b"]
    assert dependency.filters.exprs is not None
    assert dependency.filters.exprs[0].fields[1].path == "a-longer-name"
    assert dependency.transform is not None and dependency.transform.jq == ".body.message *= 2"
    assert doc.spec.triggers[0].template.conditions == "test-dep"


def errors(model: Any, data: Any) -> list[str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [e["msg"] for e in info.value.errors()]


@pytest.mark.parametrize(("data", "message"), [
    ({"type": "string", "value": ["x"]},
     "Value error, exactly one of path, jsonPath or jmesPath must be set"),
    ({"path": "a", "jsonPath": "$.a", "type": "string", "value": ["x"]},
     "Value error, exactly one of path, jsonPath or jmesPath must be set (got path, jsonPath)"),
    ({"jsonPath": "$.a[", "type": "string", "value": ["x"]},
     "Value error, invalid jsonPath '$.a[': Parse error near the end of string!"),
    ({"path": "a", "type": "string", "value": []},
     "Value error, one of data filters is not valid (type, path and value must be not empty)"),
    ({"path": "a", "type": "string", "value": ["x", ""]},
     "Value error, one of data filters is not valid (value must be not empty)"),
    ({"path": "a", "type": "string", "value": ["ok", "(unclosed"]},
     "Value error, value '(unclosed' is not a valid regular expression: "
     "error parsing regexp: missing closing ): `(unclosed`"),
    ({"path": "a", "type": "number", "value": [50.0]},
     "Value error, value entries must be strings, got 50.0: quote them in YAML"),
])
def test_data_filter_rejections(data: dict[str, Any], message: str) -> None:
    assert errors(DataFilter, data) == [message]


def test_data_filter_type_and_comparator_are_closed_sets() -> None:
    assert len(errors(DataFilter, {"path": "a", "type": "date", "value": ["x"]})) == 1
    assert len(errors(DataFilter, {"path": "a", "type": "string", "value": ["x"], "comparator": "=="})) == 1


def test_number_values_need_not_be_regexes() -> None:
    assert DataFilter.model_validate({"path": "a", "type": "number", "value": ["+1"]}).value == ["+1"]  # bad regex


def test_context_filter_needs_an_enforced_field() -> None:
    assert errors(ContextFilter, {"id": "x", "specversion": "1.0"}) == [
        "Value error, no fields specified in ctx filter (aka all events will be discarded): "
        "set type, subject, source, datacontenttype or extensions"]
    assert ContextFilter.model_validate({"extensions": {"tenant": "a"}}).extensions == {"tenant": "a"}


@pytest.mark.parametrize(("data", "message"), [
    ({"start": "09:00:00", "stop": "09:00:00"},
     "Value error, invalid event time filter: stop '09:00:00' is equal to start '09:00:00'"),
    ({"start": "24:00:00", "stop": "09:00:00"},
     'Value error, parsing time "24:00:00" as "15:04:05": not an hh:mm:ss time of day'),
    ({"start": "10:10", "stop": "09:00:00"},
     'Value error, parsing time "10:10" as "15:04:05": not an hh:mm:ss time of day'),
    ({"start": "1:00:00", "stop": "09:00:00", "timezone": "Mars/Olympus"},
     "Value error, invalid timezone 'Mars/Olympus'"),
])
def test_time_filter_rejections(data: dict[str, Any], message: str) -> None:
    assert errors(TimeFilter, data) == [message]


def test_time_filter_accepts_one_digit_hours_and_fractions() -> None:
    assert TimeFilter.model_validate({"start": "9:00:00.5", "stop": "23:59:59"}).start == "9:00:00.5"


def spec_error(deps: list[dict[str, Any]], triggers: list[dict[str, Any]]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        sensor(deps, triggers)
    return [e["msg"] for e in info.value.errors()]


def test_dependency_names_are_unique() -> None:
    assert spec_error([dep("a"), dep("a")], [trigger("t")]) == [
        "Value error, dependency names must be unique: a"]


def test_trigger_names_are_unique() -> None:
    assert spec_error([dep("a")], [trigger("t"), trigger("t")]) == [
        "Value error, trigger names must be unique: t"]


def test_conditions_are_checked_at_load() -> None:
    assert spec_error([dep("a"), dep("b")], [trigger("t", "a && c")]) == [
        "Value error, trigger 't': conditions 'a && c', column 6: unknown dependency 'c' (known: a, b)"]


def test_dependencies_and_triggers_are_required() -> None:
    assert spec_error([], [trigger("t")]) == ["Value error, no event dependencies found"]
    assert spec_error([dep("a")], []) == ["Value error, no triggers found"]


def test_dependency_fields_are_required() -> None:
    assert spec_error([{"name": "a", "eventSourceName": "", "eventName": "e"}], [trigger("t")]) == [
        "Value error, event dependency must define the EventSourceName"]


def test_unknown_fields_and_wrong_kind_are_rejected() -> None:
    assert len(spec_error([dep("a", filterz={})], [trigger("t")])) == 1
    base = {"apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource", "metadata": {"name": "s"},
            "spec": {"dependencies": [dep("a")], "triggers": [trigger("t")]}}
    assert len(errors(Sensor, base)) == 1
    assert len(errors(Sensor, {**base, "kind": "Sensor", "apiVersion": "v1"})) == 1


def test_every_field_has_a_description() -> None:
    from sensorium.sensors import spec as module

    for model in (module.ContextFilter, module.DataFilter, module.PayloadField, module.ExprFilter,
                  module.TimeFilter, module.EventDependencyFilter, module.EventDependencyTransformer,
                  module.EventDependency, module.SensorSpec, module.ObjectMeta, module.Sensor):
        missing = [name for name, info in model.model_fields.items() if not info.description]
        assert missing == [], model.__name__
