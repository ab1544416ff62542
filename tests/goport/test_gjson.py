"""engine.goport.gjson: gjson port (cases from tidwall/gjson's README), Go conversions, JSONPath, JMESPath."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorium.engine.core.paths import PathExpr
from sensorium.engine.goport.gjson import (
    PathResult,
    gjson_get,
    gjson_get_value,
    go_parse_bool,
    go_parse_float,
    parse_json,
    plain_steps,
    to_json,
    walk_plain,
)

README = """{
  "name": {"first": "Tom", "last": "Anderson"},
  "age":37,
  "children": ["Sara","Alex","Jack"],
  "fav.movie": "Deer Hunter",
  "friends": [
    {"first": "Dale", "last": "Murphy", "age": 44, "nets": ["ig", "fb", "tw"]},
    {"first": "Roger", "last": "Craig", "age": 68, "nets": ["fb", "tw"]},
    {"first": "Jane", "last": "Murphy", "age": 47, "nets": ["ig", "tw"]}
  ]
}"""


@pytest.mark.parametrize(("path", "expected"), [
    ("name.last", "Anderson"),
    ("age", "37"),
    ("children", '["Sara","Alex","Jack"]'),
    ("children.#", "3"),
    ("children.1", "Alex"),
    ("child*.2", "Jack"),
    ("c?ildren.0", "Sara"),
    ("fav\\.movie", "Deer Hunter"),
    ("friends.#.first", '["Dale","Roger","Jane"]'),
    ("friends.1.last", "Craig"),
    ('friends.#(last=="Murphy").first', "Dale"),
    ('friends.#(last=="Murphy")#.first', '["Dale","Jane"]'),
    ("friends.#(age>45)#.last", '["Craig","Murphy"]'),
    ('friends.#(first%"D*").last', "Murphy"),
    ('friends.#(first!%"D*").last', "Craig"),
    ('friends.#(nets.#(=="fb"))#.first', '["Dale","Roger"]'),
    ("children|@reverse", '["Jack","Alex","Sara"]'),
    ("children|@reverse|0", "Jack"),
    ("children.@reverse", '["Jack","Alex","Sara"]'),
    ("{name.first,age,\"the_murphys\":friends.#(last==\"Murphy\")#.first}",
     '{"first":"Tom","age":37,"the_murphys":["Dale","Jane"]}'),
    ("[name.first,age,children.0]", '["Tom",37,"Sara"]'),
    ("friends.#.{first,age}",
     '[{"first":"Dale","age":44},{"first":"Roger","age":68},{"first":"Jane","age":47}]'),
    ("@this.age", "37"),
    ("friends.#.nets|@flatten", '["ig","fb","tw","fb","tw","ig","tw"]'),
    ("name|@keys", '["first","last"]'),
    ("name|@values", '["Tom","Anderson"]'),
    ("name|@reverse", '{"last":"Anderson","first":"Tom"}'),
    ("friends.#(age==44).nets.1", "fb"),
    ("friends.#.nets.0", '["ig","fb","ig"]'),
    ('friends.#(nets.#(=="ig"))#|#', "2"),
    ("children.#(!=\"Sara\")#", '["Alex","Jack"]'),
    ("@dig:first", '["Tom","Dale","Roger","Jane"]'),
    ('{"a":!true,"b":age}', '{"a":true,"b":37}'),
])
def test_readme_paths(path: str, expected: str) -> None:
    result = gjson_get(README, path)
    assert result.exists
    assert result.string() == expected


@pytest.mark.parametrize("path", [
    "missing", "children.5", "children.first", "name.first.x", "friends.#(last==\"Nobody\").first",
    "name.#", "age.x", "fav.movie", "children.-1",
])
def test_missing_paths(path: str) -> None:
    result = gjson_get(README, path)
    assert result == PathResult(False, "Null", "", None)
    assert result.string() == ""


def test_query_all_without_match_is_an_empty_array_that_exists() -> None:
    result = gjson_get(README, 'friends.#(last=="Nobody")#')
    assert (result.exists, result.kind, result.raw) == (True, "JSON", "[]")


def test_null_exists_with_kind_null_and_renders_empty() -> None:
    result = gjson_get('{"a":null,"j":[1,2,3]}', "a")
    assert (result.exists, result.kind, result.raw, result.string()) == (True, "Null", "null", "")
    assert not gjson_get('{"a":null,"j":[1,2,3]}', "j.5").exists


def test_keys_needing_no_escape_and_header_arrays() -> None:
    doc = '{"header":{"X-Github-Event":["push"]},"a-longer-name":1,"1":{"2":"x"}}'
    assert gjson_get(doc, "header.X-Github-Event.0").string() == "push"
    assert gjson_get(doc, "a-longer-name").string() == "1"
    assert gjson_get(doc, "1.2").string() == "x"


def test_escaped_wildcard_characters_are_literal() -> None:
    doc = '{"a*b":1,"axb":2}'
    assert gjson_get(doc, "a\\*b").string() == "1"
    assert gjson_get(doc, "a*b").string() == "1"  # first key matching the wildcard


def test_wildcard_with_more_tries_every_matching_key() -> None:
    assert gjson_get('{"ab":{"x":1},"ac":{"y":2}}', "a*.y").string() == "2"


def test_query_compares_by_the_element_type() -> None:
    doc = '{"a":[{"k":"1"},{"k":1},{"k":true},{"k":2}]}'
    assert gjson_get(doc, 'a.#(k=="1")#|#').string() == "2"  # string "1" and number 1
    assert gjson_get(doc, "a.#(k>1)#.k").string() == "[2]"
    assert gjson_get(doc, "a.#(k==true)#.k").string() == "[true]"
    assert gjson_get('[1,"2",3]', "#(>1)#").string() == '["2",3]'  # "2" > "1" as strings


def test_query_existence_and_truthiness() -> None:
    doc = '{"a":[{"k":0},{"j":1},{"k":"yes"},{"k":"t"}]}'
    assert gjson_get(doc, "a.#(k)#|#").string() == "3"
    assert gjson_get(doc, "a.#(k==~true)#.k").string() == '["t"]'
    assert gjson_get(doc, "a.#(k==~false)#|#").string() == "2"  # 0 and the missing key (Null)


def test_multipath_leaves_out_missing_members() -> None:
    assert gjson_get(README, "{age,nope,name.first}").string() == '{"age":37,"first":"Tom"}'
    assert gjson_get(README, "[nope,age]").string() == "[37]"


def test_modifiers_on_missing_values() -> None:
    assert gjson_get(README, "nope|@keys").string() == "[]"
    assert not gjson_get(README, "nope|@reverse").exists


def test_flatten_deep_and_unknown_modifier_is_a_key() -> None:
    doc = '{"a":[1,[2,[3,[4]]],[]],"@foo":5}'
    assert gjson_get(doc, "a|@flatten").string() == "[1,2,[3,[4]]]"
    assert gjson_get(doc, 'a|@flatten:{"deep":true}').string() == "[1,2,3,4]"
    assert gjson_get(doc, "@foo").string() == "5"


def test_tostr_and_fromstr() -> None:
    doc = '{"s":"{\\"x\\":[1,2]}","o":{"a":1}}'
    assert gjson_get(doc, "s|@fromstr|x.1").string() == "2"
    assert gjson_get(doc, "o|@tostr").string() == '{"a":1}'


def test_json_lines_prefix_treats_the_document_as_one_line() -> None:
    assert gjson_get(README, "..0.age").string() == "37"
    assert gjson_get(README, "..#").string() == "1"


def test_first_of_duplicate_keys_wins() -> None:
    assert gjson_get('{"a":1,"a":2}', "a").string() == "1"


def test_invalid_json_gives_missing() -> None:
    assert not gjson_get("{not json", "a").exists
    assert not gjson_get('{"a":NaN}', "a").exists


@pytest.mark.parametrize(("literal", "rendered", "as_float"), [
    ("1.0", "1", 1.0), ("1.50", "1.5", 1.5), ("1e3", "1000", 1000.0), ("-0.000001", "-0.000001", -1e-06),
    ("1e21", "1000000000000000000000", 1e21),
    ("12345678901234567890123", "12345678901234567890123", 1.2345678901234568e22),
    ("-7", "-7", -7.0), ("0.1", "0.1", 0.1),
])
def test_number_string_rendering(literal: str, rendered: str, as_float: float) -> None:
    result = gjson_get('{"n":' + literal + "}", "n")
    assert (result.kind, result.raw, result.string()) == ("Number", literal, rendered)
    assert result.float() == as_float


def test_raw_text_of_objects_and_arrays_keeps_the_source_whitespace() -> None:
    doc = '{"o": {"a": 1.50,  "b": [1e3, "x"]}, "l": [ {"k": 1}, {"k" : 2} ]}'
    assert gjson_get(doc, "o").raw == '{"a": 1.50,  "b": [1e3, "x"]}'
    assert gjson_get(doc, "o").string() == '{"a": 1.50,  "b": [1e3, "x"]}'
    assert gjson_get(doc, "o.b").raw == '[1e3, "x"]'
    assert gjson_get(doc, "l.1").raw == '{"k" : 2}'
    assert gjson_get(doc, "@this").raw == doc


def test_composed_json_joins_member_raw_text_compactly_like_gjson() -> None:
    doc = '{"o": {"a": [1, 2]}, "l": [ {"k": 1}, {"k" : 2} ]}'
    assert gjson_get(doc, "l.#.k").raw == "[1,2]"
    assert gjson_get(doc, "l|@reverse").raw == '[{"k" : 2},{"k": 1}]'
    assert gjson_get(doc, "{o.a,l.0}").raw == '{"a":[1, 2],"0":{"k": 1}}'
    assert gjson_get(doc, "o|@ugly").raw == '{"a":[1,2]}'


@pytest.mark.parametrize(("json_value", "as_float", "as_bool"), [
    ('"12.5"', 12.5, False), ('"abc"', 0.0, False), ('" 5"', 0.0, False), ('"1e2"', 100.0, False),
    ('"T"', 0.0, True), ('"1"', 1.0, True), ('"true"', 0.0, True), ('"TRUE"', 0.0, True),
    ('"tRuE"', 0.0, True), ('"yes"', 0.0, False), ('"0"', 0.0, False), ("true", 1.0, True),
    ("false", 0.0, False), ("null", 0.0, False),
    ("2.5", 2.5, True), ("0", 0.0, False), ('{"a":1}', 0.0, False), ("[1]", 0.0, False),
])
def test_float_and_bool_follow_gjson(json_value: str, as_float: float, as_bool: bool) -> None:
    result = gjson_get('{"v":' + json_value + "}", "v")
    assert result.float() == as_float
    assert result.bool() is as_bool


def test_missing_result_conversions() -> None:
    result = gjson_get("{}", "v")
    assert (result.string(), result.float(), result.bool()) == ("", 0.0, False)


@pytest.mark.parametrize(("text", "value", "error"), [
    ("50.0", 50.0, None), ("1e2", 100.0, None), ("-.5", -0.5, None), ("1_000", 1000.0, None),
    ("0x1p-2", 0.25, None), ("+Inf", math.inf, None), ("infinity", math.inf, None),
    (" 5", 0.0, 'strconv.ParseFloat: parsing " 5": invalid syntax'),
    ("0x10", 0.0, 'strconv.ParseFloat: parsing "0x10": invalid syntax'),
    ("abc", 0.0, 'strconv.ParseFloat: parsing "abc": invalid syntax'),
    ("", 0.0, 'strconv.ParseFloat: parsing "": invalid syntax'),
    ("1e400", math.inf, 'strconv.ParseFloat: parsing "1e400": value out of range'),
])
def test_go_parse_float(text: str, value: float, error: str | None) -> None:
    assert go_parse_float(text) == (value, error)


def test_go_parse_float_nan() -> None:
    value, error = go_parse_float("NaN")
    assert math.isnan(value) and error is None


@pytest.mark.parametrize(("text", "value"), [
    ("1", True), ("t", True), ("T", True), ("TRUE", True), ("true", True), ("True", True),
    ("0", False), ("f", False), ("F", False), ("FALSE", False), ("false", False), ("False", False),
    ("yes", None), ("tRuE", None), ("", None),
])
def test_go_parse_bool(text: str, value: bool | None) -> None:
    assert go_parse_bool(text) is value


DOC = b'{"o":{"x":[1,2],"n":null},"items":[{"k":"a"},{"k":"b"}],"s":"str","e":[]}'


@pytest.mark.parametrize(("query", "exists", "raw"), [
    ("$.o.x[-1]", True, "2"),
    ("$.o.x[0]", True, "1"),
    ("$['o']['n']", True, "null"),
    ("o.x", True, "[1,2]"),
    ("$.o.x[5]", False, ""),
    ("$.o.missing", False, ""),
    ("$.s[0]", False, ""),  # an index selects only in arrays
    ("$.o[0]", False, ""),
    ("$.items[*].k", True, '["a","b"]'),
    ("$..k", True, '["a","b"]'),
    ("$.items[?(@.k == 'b')].k", True, '["b"]'),
    ("$.items[?(@.k == 'z')]", True, "[]"),  # a non-singular query always yields its (possibly empty) list
    ("$.o.x[0:1]", True, "[1]"),
    ("$.o.*", True, "[[1,2],null]"),
])
def test_json_path_singular_vs_list(query: str, exists: bool, raw: str) -> None:
    result = PathExpr.compile(json_path=query).get(DOC)
    assert (result.exists, result.raw) == (exists, raw)


@pytest.mark.parametrize(("query", "exists", "raw"), [
    ("o.x[1]", True, "2"), ("items[].k", True, '["a","b"]'), ("o.n", False, ""), ("o.zz", False, ""),
    ("e", True, "[]"), ("length(items)", True, "2"),
])
def test_jmes_path_null_is_missing(query: str, exists: bool, raw: str) -> None:
    result = PathExpr.compile(jmes_path=query).get(DOC)
    assert (result.exists, result.raw) == (exists, raw)


def test_jmes_path_runtime_error_is_missing_with_reason() -> None:
    result = PathExpr.compile(jmes_path="length(o.x[0])").get(DOC)
    assert not result.exists
    assert result.error is not None and result.error.startswith("jmesPath 'length(o.x[0])' failed:")


def test_path_expr_gjson_and_describe() -> None:
    expr = PathExpr.compile(path="items.#.k")
    assert expr.get(DOC).string() == '["a","b"]'
    assert expr.describe() == "path 'items.#.k'"
    assert PathExpr.compile(json_path="$.x").describe() == "jsonPath '$.x'"
    assert PathExpr.compile(jmes_path="x").describe() == "jmesPath 'x'"


def test_path_expr_accepts_parsed_values_and_reports_bad_json() -> None:
    expr = PathExpr.compile(path="a")
    assert expr.get({"a": [1]}).raw == "[1]"
    assert expr.get_value("plain").exists is False
    bad = expr.get(b"{oops")
    assert not bad.exists and bad.error is not None and bad.error.startswith("not valid JSON")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "exactly one of path, jsonPath or jmesPath must be set"),
    ({"path": "a", "jmes_path": "b"},
     "exactly one of path, jsonPath or jmesPath must be set (got path, jmesPath)"),
    ({"path": ""}, "path must not be empty"),
    ({"json_path": "$.a["}, "invalid jsonPath '$.a['"),
    ({"jmes_path": "a["}, "invalid jmesPath 'a['"),
])
def test_path_expr_compile_errors(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        PathExpr.compile(**kwargs)


# ---- plain paths: the walk must read what gjson's path parser reads ------------------------------------------

_PLAIN_KEYS = st.sampled_from(["a", "b", "0", "1", "01", "10", "x-y", "_"])
_JSON_DOCS = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_PLAIN_KEYS, inner, max_size=4)),
    max_leaves=12)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(_JSON_DOCS, st.lists(_PLAIN_KEYS, min_size=1, max_size=4).map(".".join))
def test_plain_paths_walk_as_gjson_reads_them(doc: Any, path: str) -> None:
    parsed = parse_json(json.dumps(doc, separators=(",", ":")))
    steps = plain_steps(path)
    assert steps is not None
    assert PathResult.of(walk_plain(parsed, steps)) == PathResult.of(gjson_get_value(parsed, path))


@pytest.mark.parametrize("path", ["a.*", "a.#", "a|b", "a.@this", "..a", "a\\.b", "a..b", "a.", "a.[b]", "a?"])
def test_other_paths_are_not_plain(path: str) -> None:
    assert plain_steps(path) is None


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.one_of(st.text(), st.integers(), st.booleans(), st.none()))
def test_scalars_render_as_json_dumps_does(value: Any) -> None:
    assert to_json(value) == json.dumps(value, ensure_ascii=False)
