"""Data filter `template` (semantics reference section 2.3): Go text/template over {"Input": r.String()}, whose
output replaces the value as a string before the comparison."""

from __future__ import annotations

from typing import Any

import pytest

from sensorium.sensors.filters import data_filters
from sensorium.sensors.spec import DataFilter
from tests.sensors.builders import event


def tpl(template: str, type_: str, *values: str, path: str = "v", comparator: str = "") -> DataFilter:
    return DataFilter.model_validate({"path": path, "type": type_, "value": list(values), "template": template,
                                      "comparator": comparator})


@pytest.mark.parametrize(("data", "f", "passed"), [
    ({"v": "aGVsbG8="}, tpl("{{ b64dec .Input }}", "string", "^hello$"), True),
    ({"v": "aGVsbG8="}, tpl("{{ b64dec .Input }}", "string", "^aGVs"), False),
    ({"v": "hello"}, tpl("{{ len .Input }}", "number", "5"), True),  # the output string is read as a number
    ({"v": "hello"}, tpl("{{ len .Input }}", "number", "4", comparator=">"), True),
    ({"v": "yes"}, tpl('{{ eq .Input "yes" }}', "bool", "true"), True),
    ({"v": 1.50}, tpl("{{ .Input }}", "string", r"^1\.5$"), True),  # .Input is gjson's String(): 1.5
    ({"v": {"a": 1}}, tpl("{{ .Input }}", "string", '^{"a": 1}$'), True),  # objects: their raw JSON text
    ({"v": "Hello"}, tpl("{{ upper .Input }}", "string", "^HELLO$"), True),
    ({"v": "a"}, tpl("{{ b64dec .Input }}", "string", "illegal base64"), True),  # sprig returns the error text
])
def test_template_output_replaces_the_value(data: dict[str, Any], f: DataFilter, passed: bool) -> None:
    verdict = data_filters([f], "", event(data))
    assert (verdict.passed, verdict.error) == (passed, None)


def test_the_detail_shows_the_template_output() -> None:
    verdict = data_filters([tpl("{{ b64dec .Input }}", "string", "^hello$")], "", event({"v": "aGVsbG8="}))
    assert [(d.seen, d.passed) for d in verdict.details] == [("hello", True)]


EMPTY = '{{ if eq .Input "no" }}{{ end }}'


@pytest.mark.parametrize(("template", "operator", "error"), [
    (EMPTY, "", f"data filter error (template '{EMPTY}' evaluated to empty string or no value)"),
    (EMPTY, "or", f"data filter errors [template evaluated to empty string or no value: '{EMPTY}']"),
    ("{{ .Missing }}", "", "data filter error (template '{{ .Missing }}' evaluated to empty string or no value)"),
    ("{{ .Input ", "", "data filter error (template: param:1: unclosed action)"),  # Argo: per event
    ("{{ nope .Input }}", "", 'data filter error (template: param:1: function "nope" not defined)'),
    ("{{ index .Input 5 }}", "", None),
])
def test_template_errors(template: str, operator: str, error: str | None) -> None:
    verdict = data_filters([tpl(template, "string", "x")], operator, event({"v": "yes"}))
    assert verdict.passed is False
    if error is None:
        assert verdict.error is not None and verdict.error.startswith("data filter error (template: param:1:")
    else:
        assert verdict.error == error


def test_or_mode_moves_on_after_a_template_error() -> None:
    filters = [tpl(EMPTY, "string", "x"), tpl("{{ .Input }}", "string", "^yes$")]
    verdict = data_filters(filters, "or", event({"v": "yes"}))
    assert (verdict.passed, verdict.error) == (True, None)
