"""Context filters and how filter kinds combine (semantics reference sections 1.3 and 2.2)."""

from __future__ import annotations

from typing import Any

import pytest

from sensorium.sensors.filters import FilterVerdict, combine_filters, context_filter, evaluate_filters
from sensorium.sensors.spec import ContextFilter
from tests.sensors.builders import event, filters

EVENT = event({"body": {"value": 5}}, type="webhook", datacontenttype="application/json",
              extensions={"tenant": "acme"})


@pytest.mark.parametrize(("spec", "expected"), [
    ({"type": "webhook"}, True), ({"type": "calendar"}, False), ({"subject": "example"}, True),
    ({"source": "webhook"}, True), ({"source": "other"}, False),
    ({"datacontenttype": "application/json"}, True),
    ({"datacontenttype": "application/json; charset=utf-8"}, False),
    ({"type": "webhook", "source": "other"}, False),
    ({"type": "webhook", "id": "not-this-id", "specversion": "0.3", "time": "2020-01-01T00:00:00Z"}, True),
    ({"extensions": {"tenant": "acme"}}, True), ({"extensions": {"tenant": "other"}}, False),
    ({"extensions": {"region": "eu"}}, False),
])
def test_context_filter_exact_match_on_set_fields(spec: dict[str, Any], expected: bool) -> None:
    assert context_filter(ContextFilter.model_validate(spec), EVENT).passed is expected


def test_context_filter_details_show_seen_and_wanted() -> None:
    verdict = context_filter(ContextFilter(type="calendar", extensions={"region": "eu"}), EVENT)
    assert [(d.target, d.seen, d.wanted, d.passed) for d in verdict.details] == [
        ("context.type", "webhook", ("calendar",), False),
        ("context.extensions.region", None, ("eu",), False)]


def test_no_context_filter_passes() -> None:
    assert context_filter(None, EVENT) == FilterVerdict("context", True)


def test_no_filters_pass() -> None:
    assert evaluate_filters(None, "", EVENT).passed is True
    assert evaluate_filters(None, "or", EVENT).passed is True


def test_empty_filters_pass_with_and_and_fail_with_or() -> None:
    assert evaluate_filters(filters({}), "", EVENT).passed is True
    verdict = evaluate_filters(filters({}), "or", EVENT)
    assert (verdict.passed, verdict.error) == (False, None)
    assert verdict.reason == (
        "filtersLogicalOperator is or but no filter kind is set, so nothing can pass (Argo)")


def test_empty_data_list_counts_as_set_and_passes_in_or_mode() -> None:
    assert evaluate_filters(filters({"data": []}), "or", EVENT).passed is True


MISSING_PATH = {"path": "body.nope", "type": "string", "value": ["x"]}


def test_and_mode_data_error_fails_immediately() -> None:
    spec = filters({"data": [MISSING_PATH], "context": {"type": "webhook"}})
    verdict = evaluate_filters(spec, "and", EVENT)
    assert (verdict.passed, verdict.error) == (False, "data filter error (path 'body.nope' does not exist)")
    assert [p.kind for p in verdict.parts] == ["data"]  # context is not evaluated after the error


def test_or_mode_passes_with_the_error_of_another_kind() -> None:
    verdict = evaluate_filters(filters({"data": [MISSING_PATH], "context": {"type": "webhook"}}), "or", EVENT)
    assert (verdict.passed, verdict.error) == (True, "data filter error (path 'body.nope' does not exist)")
    assert verdict.reason == "a filter kind passed (or); the errors are reported but the event passes (Argo)"


def test_or_mode_fails_with_the_error_when_nothing_passes() -> None:
    spec = filters({"data": [MISSING_PATH], "context": {"type": "calendar"}})
    verdict = evaluate_filters(spec, "or", EVENT)
    assert (verdict.passed, verdict.error) == (False, "data filter error (path 'body.nope' does not exist)")


def test_and_mode_needs_every_kind() -> None:
    spec = {"data": [{"path": "body.value", "type": "number", "value": ["5"]}],
            "context": {"type": "calendar"}}
    assert evaluate_filters(filters(spec), "", EVENT).passed is False
    assert evaluate_filters(filters(spec), "or", EVENT).passed is True


def test_or_mode_only_set_kinds_vote() -> None:
    spec = {"context": {"type": "calendar"}}  # data is not set: its implicit "true" does not count
    assert evaluate_filters(filters(spec), "or", EVENT).passed is False


def test_combine_joins_errors_with_slash_in_or_mode() -> None:
    exprs = FilterVerdict("exprs", False, "expr filter error (x)")
    data = FilterVerdict("data", False, "data filter errors [a / b]")
    context = FilterVerdict("context", True)
    verdict = combine_filters("or", [(True, exprs), (True, data), (True, context)])
    assert (verdict.passed, verdict.error) == (True, "expr filter error (x) / data filter errors [a / b]")


def test_combine_and_mode_returns_the_first_error_in_argo_order() -> None:
    exprs = FilterVerdict("exprs", False, "expr filter error (x)")
    data = FilterVerdict("data", False, "data filter error (y)")
    verdict = combine_filters("and", [(True, exprs), (True, data)])
    assert (verdict.passed, verdict.error) == (False, "expr filter error (x)")


def test_combine_script_error_is_fatal_in_or_mode() -> None:
    context = FilterVerdict("context", True)
    script = FilterVerdict("script", False, "<string> line:1(column:6) near 'x': syntax error")
    verdict = combine_filters("or", [(True, context), (True, script)])
    assert (verdict.passed, verdict.error) == (False, "<string> line:1(column:6) near 'x': syntax error")


def test_unsupported_kinds_raise() -> None:
    spec = filters({"data": [{"path": "a", "type": "string", "value": ["x"],
                              "template": '{{ genPrivateKey "rsa" }}'}]})
    with pytest.raises(ValueError, match=r'^filters\.data\.0\.template: template: param:1: unsupported function '
                                         r'"genPrivateKey" \(a sprig function outside Sensorium\'s template '
                                         r'subset\)$'):
        evaluate_filters(spec, "", EVENT)
