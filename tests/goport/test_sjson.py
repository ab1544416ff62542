"""sjson setter: every expected output below was produced by tidwall/sjson v1.2.5 (Argo's version) itself."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensorium.engine.goport.jsonenc import marshal_string
from sensorium.engine.goport.sjson import ObjectPlan, SjsonError, set_raw, set_string

CASES: list[tuple[str, str, str, str, str | tuple[str, str]]] = [
    ('set', '', 'a.b', 'v', '{"a":{"b":"v"}}'),
    ('set', '', 'items.2', 'v', '{"items":[null,null,"v"]}'),
    ('set', '{"items":[1]}', 'items.3', 'v', '{"items":[1,null,null,"v"]}'),
    ('set', '{"a":[1,2]}', 'a.-1', 'v', '{"a":[1,2,"v"]}'),
    ('set', '', 'a.-1', 'v', '{"a":["v"]}'),
    ('set', '', '-1', 'v', '{"-1":"v"}'),
    ('set', '', '0', 'v', '["v"]'),
    ('set', '', ':12', 'v', '{"12":"v"}'),
    ('set', '{"a":[]}', 'a.:0', 'v', ('ERR', "cannot set array element for non-numeric key '0'")),
    ('set', '', 'a.:0.b', 'v', '{"a":{"0":{"b":"v"}}}'),
    ('set', '{"a.b":1}', 'a\\.b', 'v', '{"a.b":"v"}'),
    ('set', '', 'a\\.b.c', 'v', '{"a.b":{"c":"v"}}'),
    ('set', '{"a":1}', 'a.b', 'v', '{"a":{"b":"v"}}'),
    ('set', '{"a":"s"}', 'a.0', 'v', '{"a":["v"]}'),
    ('set', '{"a":1,"b":1e3,"c":"\\u00e9","d":1.0}', 'e', 'v', '{"a":1,"b":1e3,"c":"\\u00e9","d":1.0,"e":"v"}'),
    ('set', '{"a":1,"b":2}', 'a', 'v', '{"a":"v","b":2}'),
    ('set', '{ "a" : 1 , "b" : [ 1 , 2 ] }', 'b.1', 'v', '{ "a" : 1 , "b" : [ 1 , "v" ] }'),
    ('set', '{ "a" : 1 }', 'c', 'v', '{ "a" : 1 ,"c":"v"}'),
    ('set', '[ 1 , 2 ]', '4', 'v', '[1,2,null,null,"v"]'),
    ('set', '{}', 'k', 'x<y&z>', '{"k":"x<y&z>"}'),
    ('set', '{}', 'k', 'é<', '{"k":"é\\u003c"}'),
    ('set', '{}', 'k', 'q"uote', '{"k":"q\\"uote"}'),
    ('set', '{}', 'k', 'line\nnext', '{"k":"line\\nnext"}'),
    ('set', '{}', 'k', '\u2028', '{"k":"\\u2028"}'),
    ('set', '{}', 'é<', 'v', '{"é\\u003c":"v"}'),
    ('set', '{}', '', 'v', ('ERR', 'path cannot be empty')),
    ('set', '[1]', 'a', 'v', ('ERR', "cannot set array element for non-numeric key 'a'")),
    ('set', '{"a":[1]}', 'a.x', 'v', ('ERR', "cannot set array element for non-numeric key 'x'")),
    ('setraw', '', 'a', '{"k": 1}', '{"a":{"k": 1}}'),
    ('setraw', '{"a":[1,2]}', 'a.-1', '3', '{"a":[1,2,3]}'),
    ('setraw', '{"a":{"b":1}}', 'a.b', 'null', '{"a":{"b":null}}'),
    ('setraw', '{"a":{"b":1}}', 'a.c.0.d', 'true', '{"a":{"b":1,"c":[{"d":true}]}}'),
    ('setraw', '5', 'a', '1', '{"a":1}'),
    ('setraw', '"s"', '0', '1', '[1]'),
]


@pytest.mark.parametrize("op,doc,path,value,expected", CASES)
def test_matches_sjson(op: str, doc: str, path: str, value: str, expected: str | tuple[str, str]) -> None:
    fn = set_string if op == "set" else set_raw
    if isinstance(expected, tuple):
        with pytest.raises(SjsonError) as info:
            fn(doc, path, value)
        assert str(info.value) == expected[1]
    else:
        assert fn(doc, path, value) == expected


@pytest.mark.parametrize("path", ["a.#", "a|b", "a.*", "a?", "@this", "a.#(b==1).c"])
def test_query_paths_are_rejected(path: str) -> None:
    with pytest.raises(SjsonError, match="not supported"):
        set_string('{"a":[{"b":1}]}', path, "v")


# ---- ObjectPlan: many sets rendered at once must equal sjson's set-by-set edits ----------------------------

_KEYS = st.sampled_from(["a", "b", "c", "id", "user_name", "x-y"])
_PATHS = st.lists(_KEYS, min_size=1, max_size=3).map(".".join)
_VALUES = st.one_of(st.text(max_size=6), st.sampled_from(["1", "1.50", "null", "true", '{"k":[1,2]}', '"s"']))


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_PATHS, _VALUES, st.booleans()), max_size=6), st.data())
def test_object_plan_renders_what_sets_one_by_one_build(sets: list[tuple[str, str, bool]], data: st.DataObject) -> None:
    plan = ObjectPlan.compile([path for path, _, _ in sets])
    if plan is None:
        return  # a repeated path or one inside another: the caller sets one by one
    chosen = [i for i in range(len(sets)) if data.draw(st.booleans())]  # parameters without a value are skipped
    values = [(i, sets[i][1] if sets[i][2] else sets[i][1] or '""', sets[i][2]) for i in chosen]  # raw: JSON
    expected = ""
    for i, value, stringify in values:
        expected = set_string(expected, sets[i][0], value) if stringify else set_raw(expected, sets[i][0], value)
    assert plan.render(values) == expected


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.text())
def test_a_string_value_is_quoted_as_sjson_quotes_it(value: str) -> None:
    # sjson's appendStringify: printable ASCII without `"` or `\` as it is, anything else through json.Marshal
    plain = not any(ch < " " or ch > "\x7f" or ch in '"\\' for ch in value)
    assert set_string("", "k", value) == '{"k":' + ('"' + value + '"' if plain else marshal_string(value)) + "}"
