"""expr filters (semantics reference section 2.4): govaluate expressions bound to event fields.

The filter table is upstream's pkg/sensors/dependencies/filter_expr_test.go (TestFilterExpr) written as data;
the language itself is pinned in tests/goport/test_govaluate.py.
"""
from __future__ import annotations

from typing import Any

import pytest

from sensorium.sensors.filters import expr_filters
from sensorium.sensors.spec import ExprFilter
from tests.sensors.builders import event


def expr(text: str, *fields: tuple[str, str]) -> ExprFilter:
    return ExprFilter.model_validate({"expr": text, "fields": [{"name": n, "path": p} for n, p in fields]})


NO_DATA = object()

# (name, data (raw bytes, NO_DATA, or a JSON value), filters, operator, result, error)
FILTER_EXPR_TABLE: list[tuple[str, Any, list[ExprFilter] | None, str, bool, str | None]] = [
    ("unsupported content type", b"a", [expr('a == "b"', ("a", "a"))], "", False,
     "expr filter error (event data not valid JSON)"),
    ("empty data", NO_DATA, [expr('a == "b"', ("a", "a"))], "", True, None),
    ("nil filters", NO_DATA, None, "", True, None),
    ("simple string equal", {"a": "b"}, [expr('a == "b"', ("a", "a"))], "", True, None),
    ("simple string different than", {"a": "c"}, [expr('a != "b"', ("a", "a"))], "", True, None),
    ("nested string equal", {"a": {"b": "c"}}, [expr('b == "b"', ("b", "a.b"))], "", False, None),
    ("number equal", {"a": {"b": 2}}, [expr("b == 2", ("b", "a.b"))], "", True, None),
    ("number less than", {"a": {"b": 2}}, [expr("b < 1", ("b", "a.b"))], "", False, None),
    ("string contains", {"a": {"b": "start long string"}}, [expr('b =~ "start"', ("b", "a.b"))], "", True,
     None),
    ("string does not contain", {"a": {"b": "long string"}}, [expr('b !~ "start"', ("b", "a.b"))], "", True,
     None),
    ("multiple filters, EMPTY operator", {"a": {"b": "x", "d": "y"}},
     [expr('b == "x"', ("b", "a.b")), expr('d == "y"', ("d", "a.d"))], "", True, None),
    ("multiple filters, AND operator", {"a": {"b": "x", "d": "y"}},
     [expr('b == "x"', ("b", "a.b")), expr('d == "d"', ("d", "a.d"))], "and", False, None),
    ("multiple filters, OR operator", {"a": {"b": "x", "d": "y"}},
     [expr('b == "x"', ("b", "a.b")), expr('d == "d"', ("d", "a.d"))], "or", True, None),
    ("multiple filters, OR operator, one field not existing", {"a": {"b": "x", "d": "y"}},
     [expr('b == "b"', ("b", "a.b")), expr('c == "c"', ("c", "a.c"))], "or", False,
     "expr filter errors [path 'a.c' does not exist]"),
    ("OR, one field not existing but not reached", {"a": {"b": "x", "d": {"e": True}}},
     [expr('b == "x"', ("b", "a.b")), expr('c == "c"', ("c", "a.c")), expr("e == true", ("e", "a.d.e"))],
     "or", True, None),
    ("EMPTY, one field not existing but not reached because first filter is false", {"a": {"b": "x", "d": "y"}},
     [expr('b == "b"', ("b", "a.b")), expr('c == "c"', ("c", "a.c"))], "", False, None),
    ("EMPTY, one field not existing", {"a": {"b": "x", "d": "y"}},
     [expr('b == "x"', ("b", "a.b")), expr('c == "c"', ("c", "a.c"))], "", False,
     "expr filter error (path 'a.c' does not exist)"),
    ("AND, one field not existing", {"a": {"b": "x", "d": {"e": True}}},
     [expr('b == "x"', ("b", "a.b")), expr('c == "c"', ("c", "a.c")), expr("e == true", ("e", "a.d.e"))],
     "and", False, "expr filter error (path 'a.c' does not exist)"),
    ("AND inside expr, one field not existing", {"a": {"b": "x", "c": {"d": True}}},
     [expr('b != "b" && d == true', ("b", "a.b"), ("d", "a.d"))], "", False,
     "expr filter error (path 'a.d' does not exist)"),
    ("AND inside expr", {"a": {"b": "x", "c": {"d": True}}},
     [expr('b != "b" && d == true', ("b", "a.b"), ("d", "a.c.d"))], "or", True, None),
    ("OR inside expr", {"a": {"b": "b", "c": {"d": False}}},
     [expr('b == "b" || d == true', ("b", "a.b"), ("d", "a.c.d"))], "", True, None),
    ("multiple comparators inside expr (e unbound, short-circuit)", {"a": {"b": "b", "c": {"d": False}, "e": 2}},
     [expr('b == "b" || (d == true && e == 2)', ("b", "a.b"), ("d", "a.c.d"))], "", True, None),
]


@pytest.mark.parametrize(("name", "data", "filters", "operator", "result", "error"), FILTER_EXPR_TABLE,
                         ids=[row[0] for row in FILTER_EXPR_TABLE])
def test_upstream_filter_expr_table(name: str, data: Any, filters: list[ExprFilter] | None, operator: str,
                                    result: bool, error: str | None) -> None:
    if data is NO_DATA:
        ev = event()
    elif isinstance(data, bytes):
        ev = event(raw=data)
    else:
        ev = event(data)
    verdict = expr_filters(filters, operator, ev)
    assert (verdict.passed, verdict.error) == (result, error)


def test_expr_details_show_bindings_and_result() -> None:
    verdict = expr_filters([expr("n > 5 && s == 'x'", ("n", "a.n"), ("s", "a.s"))], "",
                           event({"a": {"n": 7, "s": "x"}}))
    assert [(d.target, d.seen, d.passed, d.reason) for d in verdict.details] == [
        ("expr 'n > 5 && s == 'x''", 'n=7, s="x"', True, "evaluated to true")]


def test_non_boolean_result_counts_as_false() -> None:
    verdict = expr_filters([expr("n + 1", ("n", "n"))], "", event({"n": 1}))
    assert verdict.passed is False
    assert verdict.details[0].reason == "evaluated to 2, which is not the boolean true"


def test_evaluation_error_in_and_mode_and_or_mode() -> None:
    filters = [expr("n > 1", ("n", "n")), expr("n == 'a'", ("n", "n"))]
    ev = event({"n": "text"})
    assert (expr_filters(filters, "", ev).passed, expr_filters(filters, "", ev).error) == (
        False, "expr filter error (Value 'text' cannot be used with the comparator '>', it is not a number)")
    verdict = expr_filters(filters, "or", ev)
    assert verdict.passed is False
    assert verdict.error == ("expr filter errors [Value 'text' cannot be used with the comparator '>', "
                             "it is not a number]")


def test_json_path_and_jmes_path_fields() -> None:
    f = ExprFilter.model_validate({"expr": "a == 'x' && b == 2", "fields": [
        {"name": "a", "jsonPath": "$.body.a"}, {"name": "b", "jmesPath": "body.b"}]})
    assert expr_filters([f], "", event({"body": {"a": "x", "b": 2}})).passed is True


def test_no_type_coercion() -> None:
    ev = event({"a": "1", "b": 1, "t": True})
    assert expr_filters([expr("a == 1", ("a", "a"))], "", ev).passed is False
    assert expr_filters([expr("b == 1", ("b", "b"))], "", ev).passed is True
    assert expr_filters([expr("t == 1", ("t", "t"))], "", ev).passed is False
    assert expr_filters([expr('a > 0', ("a", "a"))], "", ev).error == (
        "expr filter error (Value '1' cannot be used with the comparator '>', it is not a number)")
