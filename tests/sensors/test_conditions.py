"""Trigger conditions: parsing, precedence, hyphen/underscore lookup and errors (reference section 4.1)."""

from __future__ import annotations

import pytest

from sensorium.sensors.conditions import And, Name, Or, compile_condition, default_condition

DEPS = ["a", "b", "c", "dep_1a", "my-dep"]


def holds(expression: str, received: set[str]) -> bool:
    return compile_condition(expression, DEPS).evaluate(received)


@pytest.mark.parametrize(("received", "expected"), [
    (set(), False), ({"a"}, True), ({"b"}, False), ({"c"}, False), ({"b", "c"}, True),
    ({"a", "b", "c"}, True),
])
def test_and_binds_tighter_than_or(received: set[str], expected: bool) -> None:
    assert holds("a || b && c", received) is expected


@pytest.mark.parametrize(("received", "expected"), [
    ({"a"}, False), ({"a", "c"}, True), ({"b", "c"}, True), ({"a", "b"}, False), ({"c"}, False),
])
def test_parentheses_group(received: set[str], expected: bool) -> None:
    assert holds("(a || b) && c", received) is expected


def test_tree_shape() -> None:
    condition = compile_condition("a && (b || c) && dep_1a", DEPS)
    assert condition.root == And((Name("a"), Or((Name("b"), Name("c"))), Name("dep_1a")))
    assert condition.root.render() == "a && (b || c) && dep_1a"
    assert condition.text == "a && (b || c) && dep_1a"


def test_hyphen_in_condition_names_an_underscore_dependency_and_back() -> None:
    assert compile_condition("dep-1a", DEPS).names() == ("dep_1a",)
    assert compile_condition("my_dep && a", DEPS).names() == ("my-dep", "a")


def test_colliding_names_resolve_to_the_later_dependency_as_in_argo() -> None:
    assert compile_condition("x-y", ["x-y", "x_y"]).names() == ("x_y",)


def test_whitespace_is_irrelevant() -> None:
    assert compile_condition("a&&(b||c)", DEPS).root == compile_condition(" a && ( b || c ) ", DEPS).root


def test_names_in_order_of_first_appearance() -> None:
    assert compile_condition("c || (a && c) || b", DEPS).names() == ("c", "a", "b")


@pytest.mark.parametrize(("expression", "has_and"), [
    ("a", False), ("a || b", False), ("(a || b)", False), ("a && b", True), ("a || (b && c)", True),
])
def test_has_and(expression: str, has_and: bool) -> None:
    assert compile_condition(expression, DEPS).has_and() is has_and


def test_default_is_and_of_all_dependencies() -> None:
    for absent in (None, ""):
        condition = compile_condition(absent, ["x", "y-z", "w"])
        assert (condition.text, condition.names()) == ("x && y-z && w", ("x", "y-z", "w"))
        assert condition.has_and() is True
        assert condition.evaluate({"x", "y-z"}) is False
        assert condition.evaluate({"x", "y-z", "w"}) is True


def test_default_with_one_dependency_fires_immediately() -> None:
    condition = default_condition(["only"])
    assert (condition.root, condition.has_and()) == (Name("only"), False)


@pytest.mark.parametrize(("expression", "message"), [
    ("!a", "conditions '!a', column 1: '!' (negation) is not supported; only &&, || and parentheses are"),
    ("a and b", "conditions 'a and b', column 3: 'and' is not an operator here; use && and ||"),
    ("a OR b", "conditions 'a OR b', column 3: 'OR' is not an operator here; use && and ||"),
    ("a & b", "conditions 'a & b', column 3: single '&' (use '&&')"),
    ("a | b", "conditions 'a | b', column 3: single '|' (use '||')"),
    ("x", "conditions 'x', column 1: unknown dependency 'x' (known: a, b, c, dep_1a, my-dep)"),
    ("a && zz", "conditions 'a && zz', column 6: unknown dependency 'zz' (known: a, b, c, dep_1a, my-dep)"),
    ("a &&", "conditions 'a &&', column 5: expected a dependency name or '(', found 'end of expression'"),
    ("(a", "conditions '(a', column 3: expected ')', found 'end of expression'"),
    ("a)", "conditions 'a)', column 2: expected '&&', '||' or the end of the expression, found ')'"),
    ("a b", "conditions 'a b', column 3: expected '&&', '||' or the end of the expression, found 'b'"),
    ("()", "conditions '()', column 2: expected a dependency name or '(', found ')'"),
    ("   ", "conditions '   ', column 4: expected a dependency name or '(', found 'end of expression'"),
    ("a.b", "conditions 'a.b', column 2: unexpected character '.'"),
])
def test_errors_name_the_column_and_what_was_expected(expression: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        compile_condition(expression, DEPS)
    assert str(info.value) == message
