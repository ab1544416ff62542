"""Go's `%v` and reflect.DeepEqual: one table that govaluate's adapters and the template's canonical
implementation (engine.goport.template.fmt.sprint_v, template.values.deep_equal) must both pass.

The values are govaluate's model (float64, string, bool, nil, map[string]interface {}, []interface {}), which
both hold. The expected texts are in the tables; go_outputs.json holds what Go's fmt.Sprint and
reflect.DeepEqual give for the same Go values (written in go_outputs.go in the same order), and
test_tables_match_go checks that the two agree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sensorium.engine.goport import govaluate
from sensorium.engine.goport.re2 import compile_re2
from sensorium.engine.goport.template import fmt as template_fmt
from sensorium.engine.goport.template import values as template_values

SPRINTS: dict[str, Callable[[Any], str]] = {"govaluate": govaluate.go_sprint, "template": template_fmt.sprint_v}
DEEP_EQUALS: dict[str, Callable[[Any, Any], bool]] = {"govaluate": govaluate.deep_equal,
                                                      "template": template_values.deep_equal}

PRINTED = [
    (None, "<nil>"), (True, "true"), (False, "false"), ("text", "text"), ("", ""),
    (1.0, "1"), (-0.0, "-0"), (0.1, "0.1"), (1e21, "1e+21"), (1e20, "1e+20"), (123456789.0, "1.23456789e+08"),
    (1e-5, "1e-05"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"),
    ([], "[]"), ([1.0, "a b", None, True], "[1 a b <nil> true]"),
    ({}, "map[]"), ({"b": 2.0, "a": [1.5, {"z": None}], "B": "x"}, "map[B:x a:[1.5 map[z:<nil>]] b:2]"),
]


@pytest.mark.parametrize("impl", SPRINTS)
@pytest.mark.parametrize(("value", "expected"), PRINTED, ids=[text for _, text in PRINTED])
def test_sprint_v(impl: str, value: Any, expected: str) -> None:
    assert SPRINTS[impl](value) == expected


EQUALITIES = [
    (None, None, True), (1.0, 1.0, True), (1.0, "1", False), (True, 1.0, False), (False, None, False),
    ("a", "a", True), (math.nan, math.nan, False), (0.0, -0.0, True),
    ([1.0, [2.0]], [1.0, [2.0]], True), ([1.0], [1.0, 2.0], False), ([], {}, False), ([None], [], False),
    ({"a": [1.0, {"b": None}]}, {"a": [1.0, {"b": None}]}, True), ({"a": 1.0}, {"a": 1.0, "b": 2.0}, False),
    ({"a": None}, {"b": None}, False), ({"a": math.nan}, {"a": math.nan}, False),
]


@pytest.mark.parametrize("impl", DEEP_EQUALS)
@pytest.mark.parametrize(("a", "b", "expected"), EQUALITIES)
def test_deep_equal(impl: str, a: Any, b: Any, expected: bool) -> None:
    assert DEEP_EQUALS[impl](a, b) is expected
    assert DEEP_EQUALS[impl](b, a) is expected


def test_tables_match_go() -> None:
    go = json.loads((Path(__file__).parent / "go_outputs.json").read_text())
    assert go["sprint_v"] == [text for _, text in PRINTED]
    assert go["deep_equal"] == [equal for _, _, equal in EQUALITIES]


def test_govaluate_adds_only_the_regexp() -> None:
    pattern = compile_re2("^a+$")
    assert govaluate.go_sprint(pattern) == "^a+$"
    assert govaluate.deep_equal(pattern, compile_re2("^a+$"))
    assert not govaluate.deep_equal(pattern, "^a+$")


def test_govaluate_lifts_the_template_nesting_bound() -> None:
    deep: Any = 1.0
    for _ in range(template_values.MAX_DEPTH + 50):
        deep = [deep]
    with pytest.raises(template_values.TemplateLimitError):
        template_fmt.sprint_v(deep)
    assert govaluate.go_sprint(deep) == "[" * (template_values.MAX_DEPTH + 50) + "1" + "]" * (
        template_values.MAX_DEPTH + 50)
    assert govaluate.deep_equal(deep, deep)
