"""How all filter kinds combine (semantics reference section 2.2), including exprs, time and script.

The table is upstream's filter_test.go (TestFilter) written as data; each row runs the whole filter evaluation
(exprs, data, context, time, script in Argo's order).
"""

from __future__ import annotations

from typing import Any

import pytest

from sensorium.sensors.filters import evaluate_filters
from sensorium.sensors.spec import EventDependencyFilter, TimeFilter
from tests.sensors.builders import event, filters

CTX = {"type": "webhook", "source": "webhook-gateway", "subject": "example-1",
       "datacontenttype": "application/json", "time": "2024-07-15T16:36:34Z"}
KV = event({"k": "v"}, event_id="1", **CTX)
ADVANCED = event(raw=b'{ "a": "x", "b": 10, "c": { "d": "hello world", "e": false } }',
                 time="2024-07-15T16:36:34Z")


def data(path: str, type_: str, *values: str) -> dict[str, Any]:
    return {"path": path, "type": type_, "value": list(values)}


def expr(text: str, name: str, path: str) -> dict[str, Any]:
    return {"expr": text, "fields": [{"name": name, "path": path}]}


A_X, B_10, B_11, A_Y = data("a", "string", "x"), data("b", "number", "10"), data("b", "number", "11"), \
    data("a", "string", "y")
C_HELLO, C_EVERYBODY = expr('d == "hello world"', "d", "c.d"), expr('d == "hello everybody"', "d", "c.d")
D_FALSE, D_TRUE = expr("e == false", "e", "c.e"), expr("e == true", "e", "c.e")

# (name, filter spec, filtersLogicalOperator, event, passed, has error)
TABLE: list[tuple[str, dict[str, Any], str, Any, bool, bool]] = [
    ("test empty", {}, "and", KV, True, False),
    ("test event passing", {"data": [data("k", "string", "v")]}, "and", KV, True, False),
    ("test event not passing", {"data": [data("z", "string", "v")]}, "and", KV, False, True),
    ("'empty' filtersLogicalOperator", {"context": {"type": "webhook", "source": "webhook-gateway"},
                                        "data": [data("k", "string", "z")]}, "", KV, False, False),
    ("'empty' filtersLogicalOperator with error", {"context": {"type": "webhook", "source": "webhook-gateway"},
                                                   "data": [data("z", "string", "v")]}, "", KV, False, True),
    ("'and' filtersLogicalOperator", {"context": {"type": "webhook", "source": "webhook-fake"},
                                      "data": [data("k", "string", "v")]}, "and", KV, False, False),
    ("'and' filtersLogicalOperator with error", {"context": {"type": "webhook", "source": "webhook-gateway"},
                                                 "data": [data("z", "string", "v")]}, "and", KV, False, True),
    ("'or' filtersLogicalOperator", {"context": {"type": "webhook", "source": "webhook-gateway"},
                                     "data": [data("z", "string", "v")]}, "or", KV, True, True),
    ("advanced (A && B) && (C && D)", {"data": [A_X, B_10], "exprs": [C_HELLO, D_FALSE]}, "", ADVANCED, True,
     False),
    ("advanced (A && B) && (C && D) with error", {"data": [data("z", "string", "x"), B_10],
                                                  "exprs": [C_HELLO, expr('e == false"', "e", "c.e")]},
     "", ADVANCED, False, True),
    ("advanced (A && B) || (C && D)", {"data": [A_X, B_10], "dataLogicalOperator": "and",
                                       "exprs": [C_HELLO, D_TRUE], "exprLogicalOperator": "and"},
     "or", ADVANCED, True, False),
    ("advanced (A || B) && (C || D)", {"data": [A_X, B_11], "dataLogicalOperator": "or",
                                       "exprs": [C_HELLO, D_TRUE], "exprLogicalOperator": "or"},
     "and", ADVANCED, True, False),
    ("'or' with only a subset of filters specified",
     {"exprs": [expr('A == "not-valid"', "A", "a.b")],
      "data": [data("a.d.e.f", "string", "not-valid"), data("a.h.i", "string", "not-valid", "not-valid-2")]},
     "or", event({"a": {"b": "c", "d": {"e": {"f": "g"}}, "h": {"i": "j"}}}), False, False),
    ("advanced (A || B) || (C || D)", {"data": [A_Y, B_11], "dataLogicalOperator": "or",
                                       "exprs": [C_HELLO, D_FALSE], "exprLogicalOperator": "or"},
     "or", ADVANCED, True, False),
    ("advanced (A && B) || (C || D)", {"data": [A_X, B_10], "dataLogicalOperator": "and",
                                       "exprs": [C_EVERYBODY, D_TRUE], "exprLogicalOperator": "or"},
     "or", ADVANCED, True, False),
    ("advanced (A || B) || (C && D)", {"data": [A_X, B_11], "dataLogicalOperator": "or",
                                       "exprs": [C_EVERYBODY, D_FALSE], "exprLogicalOperator": "and"},
     "or", ADVANCED, True, False),
    ("advanced (A && B) && (C || D)", {"data": [A_X, B_11], "dataLogicalOperator": "and",
                                       "exprs": [C_EVERYBODY, D_TRUE], "exprLogicalOperator": "or"},
     "and", ADVANCED, False, False),
    ("advanced (A || B) && (C && D)", {"data": [A_X, B_10], "dataLogicalOperator": "or",
                                       "exprs": [expr('f == "hello world"', "f", "c.f"), D_FALSE],
                                       "exprLogicalOperator": "and"},
     "and", ADVANCED, False, True),
]


@pytest.mark.parametrize(("name", "spec", "operator", "ev", "passed", "has_error"), TABLE,
                         ids=[row[0] for row in TABLE])
def test_upstream_filter_table(name: str, spec: dict[str, Any], operator: str, ev: Any, passed: bool,
                               has_error: bool) -> None:
    verdict = evaluate_filters(filters(spec), operator, ev)
    assert (verdict.passed, verdict.error is not None) == (passed, has_error)


def test_upstream_time_error_row() -> None:
    # "test error": start "09:09:0" is refused by the spec model at load; at run time it is an error
    spec = EventDependencyFilter.model_construct(
        time=TimeFilter.model_construct(start="09:09:0", stop="19:19:19", timezone=""), context=None,
        data=None, exprs=None, data_logical_operator="", expr_logical_operator="", script="")
    verdict = evaluate_filters(spec, "and", KV)
    assert (verdict.passed, verdict.error) == (
        False, 'time filter error (parsing time "2024-07-15 09:09:0" as "2006-01-02 15:04:05": '
               'cannot parse "0" as "05")')


# ---- order, set-ness and errors with the new kinds ---------------------------------------------------------

EV = event({"n": 5, "s": "x"}, time="2024-07-15T10:00:00Z")
BAD_EXPR = [expr("n > 1", "n", "missing")]
TRUE_EXPR, FALSE_EXPR = [expr("n == 5", "n", "n")], [expr("n == 6", "n", "n")]
IN_TIME, OUT_TIME = {"start": "09:00:00", "stop": "11:00:00"}, {"start": "11:00:00", "stop": "12:00:00"}


@pytest.mark.parametrize(("spec", "operator", "passed", "error", "kinds"), [
    # AND: an exprs error returns before data/context/time/script run
    ({"exprs": BAD_EXPR, "data": [data("n", "number", "5")], "script": "return true"}, "and", False,
     "expr filter error (path 'missing' does not exist)", ["exprs"]),
    # AND: every kind has to pass; time and script included
    ({"exprs": TRUE_EXPR, "time": IN_TIME, "script": "return event.s == 'x'"}, "and", True, None,
     ["exprs", "time", "script"]),
    ({"exprs": TRUE_EXPR, "time": OUT_TIME, "script": "return true"}, "and", False, None,
     ["exprs", "time", "script"]),
    # OR: one passing kind is enough, errors are joined with " / " in Argo's order
    ({"exprs": BAD_EXPR, "data": [data("missing", "string", "x")], "time": IN_TIME}, "or", True,
     "expr filter error (path 'missing' does not exist) / data filter error (path 'missing' does not exist)",
     ["exprs", "data", "time"]),
    ({"exprs": FALSE_EXPR, "time": OUT_TIME, "script": "return false"}, "or", False, None,
     ["exprs", "time", "script"]),
    ({"script": "return true"}, "or", True, None, ["script"]),
    ({"time": IN_TIME}, "or", True, None, ["time"]),
    # OR: a script error is fatal even when another kind passed
    ({"exprs": TRUE_EXPR, "script": "error('boom')"}, "or", False, "script filter error (script:1: boom)",
     ["exprs", "script"]),
    # `exprs: []` is set: with nothing to evaluate it passes, and it votes in OR mode
    ({"exprs": []}, "or", True, None, ["exprs"]),
    ({"exprs": [], "time": OUT_TIME}, "and", False, None, ["exprs", "time"]),
])
def test_combination_with_new_kinds(spec: dict[str, Any], operator: str, passed: bool, error: str | None,
                                    kinds: list[str]) -> None:
    verdict = evaluate_filters(filters(spec), operator, EV)
    assert (verdict.passed, verdict.error) == (passed, error)
    assert [p.kind for p in verdict.parts] == kinds


def test_and_mode_script_error_is_returned() -> None:
    verdict = evaluate_filters(filters({"script": "return nope.x"}), "", EV)
    assert (verdict.passed, verdict.error) == (
        False, "script filter error (script:1: attempt to index global 'nope' (a nil value))")


def test_no_data_passes_exprs_and_script_but_not_a_failing_time_filter() -> None:
    spec = filters({"exprs": TRUE_EXPR, "script": "return false", "time": OUT_TIME})
    verdict = evaluate_filters(spec, "and", event(time="2024-07-15T10:00:00Z"))
    assert verdict.passed is False
    assert [(p.kind, p.passed) for p in verdict.parts] == [("exprs", True), ("time", False), ("script", True)]
