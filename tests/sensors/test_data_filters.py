"""Data filters, decision for decision with Argo's filterData (semantics reference section 2.3)."""

from __future__ import annotations

from typing import Any

import pytest

from sensorium.sensors.filters import FilterVerdict, data_filters
from sensorium.sensors.spec import DataFilter
from tests.sensors.builders import data_filter, event


def run(value: Any, *specs: DataFilter, operator: str = "") -> FilterVerdict:
    return data_filters(list(specs), operator, event({"body": {"value": value}}))


def passes(event_value: Any, **spec: Any) -> bool:
    verdict = run(event_value, data_filter(**spec))
    assert verdict.error is None
    return verdict.passed


# ---- bool ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("event_value", "wanted", "expected"), [
    (True, "true", True), (False, "false", True), (True, "false", False),
    ("T", "true", True), ("1", "true", True), ("true", "true", True), ("TRUE", "true", True),
    ("tRuE", "true", True),  # gjson lower-cases before ParseBool
    ("yes", "true", False), ("yes", "false", True),  # not a Go bool: reads as false
    (1, "true", True), (0, "false", True), (2.5, "T", True),
    (None, "false", True), ({"a": 1}, "false", True), ([True], "true", False),
])
def test_bool_reads_the_event_value_like_gjson(event_value: Any, wanted: str, expected: bool) -> None:
    assert passes(event_value, type="bool", value=[wanted]) is expected


@pytest.mark.parametrize("wanted", ["1", "t", "T", "TRUE", "true", "True"])
def test_bool_filter_values_accept_go_parse_bool_spellings(wanted: str) -> None:
    assert passes(True, type="bool", value=[wanted]) is True


def test_bool_ignores_the_comparator() -> None:
    assert passes(True, type="bool", value=["true"], comparator="!=") is True


def unchecked(**fields: Any) -> DataFilter:
    """A filter built without the load-time checks, which refuse the invalid values these tests need to reach
    the evaluation (tests/test_config_semantics.py covers the refusal)."""
    return DataFilter.model_construct(**{"path": "body.value", "comparator": "", "template": "", "json_path": None,
                                         "jmes_path": None, **fields})


def test_bool_invalid_filter_value_at_runtime_is_an_error() -> None:
    verdict = run(True, unchecked(type="bool", value=["yes"]))
    assert (verdict.passed, verdict.error) == (
        False, 'data filter error (strconv.ParseBool: parsing "yes": invalid syntax)')


def test_bool_first_matching_value_wins() -> None:
    assert passes(False, type="bool", value=["true", "false"]) is True


# ---- number --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("event_value", "comparator", "wanted", "expected"), [
    (50.0, "", "50.0", True), (50, "=", "50", True), (51, "", "50", False),
    (51, ">", "50.0", True), (50, ">", "50.0", False), (50, ">=", "50", True), (49.5, "<", "50", True),
    (50, "<=", "50", True), (51, "<=", "50", False), (3, "!=", "4", True), (4, "!=", "4", False),
    (100, "", "1e2", True), ("12", "", "12", True), ("12.50", "=", "12.5", True),
    ("abc", "", "0", True),  # unparsable string reads as 0, no error
    ("abc", ">", "-1", True), (" 5", "", "5", False), (True, "", "1", True), (False, "", "0", True),
    (None, "", "0", True), ({"a": 1}, "", "0", True), ([5], "", "5", False),
])
def test_number_compares_gjson_float(event_value: Any, comparator: str, wanted: str, expected: bool) -> None:
    assert passes(event_value, type="number", value=[wanted], comparator=comparator) is expected


def test_number_nan_never_equal_and_inf_accepted() -> None:
    assert passes(1, type="number", value=["NaN"]) is False
    assert passes(1, type="number", value=["Inf"], comparator="<") is True


def test_number_values_are_ored() -> None:
    assert passes(2, type="number", value=["1", "2"]) is True
    assert passes(3, type="number", value=["1", "2"]) is False


@pytest.mark.parametrize(("wanted", "error"), [
    (" 5", 'data filter error (strconv.ParseFloat: parsing " 5": invalid syntax)'),
    ("0x10", 'data filter error (strconv.ParseFloat: parsing "0x10": invalid syntax)'),
    ("1e400", 'data filter error (strconv.ParseFloat: parsing "1e400": value out of range)'),
])
def test_number_invalid_filter_value_at_runtime_is_an_error(wanted: str, error: str) -> None:
    verdict = run(5, unchecked(type="number", value=[wanted]))
    assert (verdict.passed, verdict.error) == (False, error)


def test_number_reason_explains_the_string_read_as_zero() -> None:
    verdict = run("abc", data_filter(type="number", value=["0"]))
    assert verdict.details[0].seen == "abc"
    assert verdict.details[0].reason == "0 = 0; the string 'abc' is not a number, so it reads as 0 (Argo)"


# ---- string --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("event_value", "comparator", "wanted", "expected"), [
    ("hello world", "", "world", True),  # unanchored search
    ("hello world", "", "^world", False), ("hello world", "=", "^hello", True),
    ("hello", "!=", "bye", True), ("hello", "!=", "ell", False),
    ("hello", ">", "hello", False), ("hello", "<=", "nomatch", False),  # other comparators never match
    (1.0, "", "^1$", True), (1.50, "", r"^1\.5$", True), (1e3, "", "^1000$", True),
    (True, "", "^true$", True), (None, "", "^$", True),
    ({"a": 1}, "", '^\\{"a": 1\\}$', True),  # raw text of the payload, whitespace kept
    (["x", "y"], "", '"y"', True),
    ("abc\n", "", "^abc$", False),  # RE2 `$` is end of text
    ("ABC", "", "(?i)abc", True), ("x1", "", r"\d", True),
])
def test_string_is_an_unanchored_re2_search(event_value: Any, comparator: str, wanted: str,
                                             expected: bool) -> None:
    assert passes(event_value, type="string", value=[wanted], comparator=comparator) is expected


def test_string_values_are_ored() -> None:
    assert passes("hey", type="string", value=["hello", "hey"]) is True


def test_string_other_comparator_reason() -> None:
    verdict = run("hello", data_filter(type="string", value=["hello"], comparator=">"))
    assert (verdict.passed, verdict.error) == (False, None)
    assert verdict.details[0].reason == "comparator '>' never matches a string filter (Argo)"


def test_string_invalid_regex_at_runtime_is_an_error() -> None:
    bad = DataFilter.model_construct(path="body.value", type="string", value=["(abc"], comparator="",
                                     template="", json_path=None, jmes_path=None)
    verdict = run("abc", bad)
    assert (verdict.passed, verdict.error) == (
        False, "data filter error (error parsing regexp: missing closing ): `(abc`)")


def test_unsupported_type_at_runtime_is_an_error() -> None:
    bad = DataFilter.model_construct(path="body.value", type="date", value=["x"], comparator="", template="",
                                     json_path=None, jmes_path=None)
    assert run("abc", bad).error == "data filter error (unsupported JSON type 'date')"


# ---- missing data, paths and combination ---------------------------------------------------------------

def test_no_data_passes() -> None:
    verdict = data_filters([data_filter(type="string", value=["x"])], "", event())
    assert (verdict.passed, verdict.error) == (True, None)
    assert verdict.reason == "the event has no data, so data filters pass (Argo)"


def test_invalid_json_is_an_error_whatever_the_content_type() -> None:
    verdict = data_filters([data_filter(type="string", value=["x"])], "",
                           event(raw=b"not json", datacontenttype="text/plain"))
    assert (verdict.passed, verdict.error) == (False, "data filter error (event data not valid JSON)")


def test_no_filters_pass() -> None:
    assert data_filters([], "", event({"a": 1})).passed is True
    assert data_filters(None, "or", event({"a": 1})).passed is True


def test_missing_path_is_an_error_in_and_mode() -> None:
    verdict = data_filters([data_filter(path="body.nope", type="string", value=["x"])], "",
                           event({"body": {}}))
    assert (verdict.passed, verdict.error) == (False, "data filter error (path 'body.nope' does not exist)")
    assert verdict.details[0].seen is None


def test_and_stops_at_the_first_failing_filter() -> None:
    verdict = run(5, data_filter(type="number", value=["6"]),
                  data_filter(path="nope", type="string", value=["x"]))
    assert (verdict.passed, verdict.error, len(verdict.details)) == (False, None, 1)
    detail = verdict.details[0]
    assert (detail.target, detail.seen, detail.wanted) == ("path 'body.value'", "5", ("6",))
    assert detail.passed is False


def test_and_passes_when_every_filter_passes() -> None:
    verdict = run(5, data_filter(type="number", value=["5"]), data_filter(type="string", value=["5"]))
    assert (verdict.passed, verdict.error, len(verdict.details)) == (True, None, 2)


def test_or_first_passing_filter_wins_and_discards_errors() -> None:
    verdict = run(5, data_filter(path="nope", type="string", value=["x"]),
                  data_filter(type="number", value=["5"]), operator="or")
    assert (verdict.passed, verdict.error) == (True, None)
    assert verdict.reason == "a filter passed (or); errors of earlier filters are discarded (Argo)"
    assert [(d.seen, d.passed, d.reason) for d in verdict.details] == [
        (None, False, "path 'nope' does not exist"), ("5", True, "5 = 5")]


def test_or_collects_errors_when_nothing_passes() -> None:
    verdict = run(5, data_filter(path="a", type="string", value=["x"]),
                  data_filter(type="number", value=["6"]),
                  data_filter(path="b", type="bool", value=["true"]), operator="or")
    assert (verdict.passed, verdict.error) == (
        False, "data filter errors [path 'a' does not exist / path 'b' does not exist]")


def test_or_single_error_uses_the_plural_template() -> None:
    verdict = run(5, data_filter(path="a", type="string", value=["x"]), operator="or")
    assert verdict.error == "data filter errors [path 'a' does not exist]"


def test_or_without_errors_fails_cleanly() -> None:
    verdict = run(5, data_filter(type="number", value=["6"]), operator="or")
    assert (verdict.passed, verdict.error) == (False, None)


def test_scalar_json_document_has_no_paths() -> None:
    verdict = data_filters([data_filter(path="a", type="string", value=["x"])], "", event("just a string"))
    assert verdict.error == "data filter error (path 'a' does not exist)"


# ---- jsonPath / jmesPath -------------------------------------------------------------------------------

def test_json_path_list_result_renders_as_json_text() -> None:
    spec = DataFilter.model_validate({"jsonPath": "$.items[*].name", "type": "string", "value": ['"b"']})
    verdict = data_filters([spec], "", event({"items": [{"name": "a"}, {"name": "b"}]}))
    assert verdict.passed is True
    assert verdict.details[0].seen == '["a","b"]'


def test_json_path_singular_number() -> None:
    spec = DataFilter.model_validate({"jsonPath": "$.items[1].n", "type": "number", "value": ["2"]})
    assert data_filters([spec], "", event({"items": [{"n": 1}, {"n": 2}]})).passed is True


def test_jmes_path_null_is_missing() -> None:
    spec = DataFilter.model_validate({"jmesPath": "a.b", "type": "string", "value": ["x"]})
    verdict = data_filters([spec], "", event({"a": {"b": None}}))
    assert verdict.error == "data filter error (jmesPath 'a.b' does not exist)"
