"""Dependency transforms (semantics reference section 2.7) and their place in the sensor stage.

The first tests are upstream's transform_test.go (TestApplyJQTransform, TestApplyScriptTransform) as data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from sensorium.sensors.spec import EventDependencyTransformer
from sensorium.sensors.stage import SensorStage, StageConfigError
from sensorium.sensors.transform import (
    TransformConfigError,
    TransformError,
    apply_jq,
    apply_script,
    apply_transform,
    check_jq,
    check_transform,
    close_worker,
)
from tests.sensors.builders import dep, event, sensor, trigger

NOW = datetime(2024, 7, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True, scope="module")
def _stop_worker() -> Iterator[None]:
    yield
    close_worker()


def test_upstream_jq_transform() -> None:
    assert apply_jq(".a += 1 | .b *= 2", b'{"a":1,"b":"2"}') == b'{"a":2,"b":"22"}'


def test_upstream_script_transform() -> None:
    assert apply_script("\nevent.c.d[1]=4\nreturn event\n", b'{"a":1,"b":"2","c":{"d":[3]}}') == \
        b'{"a":1,"b":"2","c":{"d":[4]}}'
    with pytest.raises(TransformError, match=r"^transformation script output type is not of lua table"):
        apply_script('\nreturn "hello"\n', b'{"a":1,"b":"2","c":{"d":[3]}}')


def test_upstream_empty_array_from_lua() -> None:
    out = apply_script("event.env = setmetatable({}, { __is_array = true })\nreturn event", b'{"env": 123}')
    assert json.loads(out)["env"] == []


@pytest.mark.parametrize(("script", "data", "expected"), [
    ("return event", b'{"b": 1, "a": 2.5, "c": null}', b'{"a":2.5,"b":1}'),  # keys sorted, null dropped
    ("event.n = 4 return event", b"{}", b'{"n":4}'),  # float64 4 is written as 4
    ("event.x = 1/3 return event", b"{}", b'{"x":0.3333333333333333}'),
    ("event.big = 1e21 event.small = 1e-7 return event", b"{}", b'{"big":1e+21,"small":1e-7}'),
    ("return {1, 2, nil, 4}", b"{}", b"[1,2,null,4]"),  # MaxN() > 0: an array (Argo accepts it as data)
    ("local t = {} t[3] = 'x' t.k = 'dropped' return {v = t}", b"{}", b'{"v":[null,null,"x"]}'),
    ("return {[1.5] = 'a', [true] = 'b', [-1] = 'c'}", b"{}", b'{"-1":"c","1.5":"a","true":"b"}'),
    ("return {}", b"{}", b"{}"),
    ("event.s = event.s .. '!' return event", b'{"s": "<a&b>"}', b'{"s":"\\u003ca\\u0026b\\u003e!"}'),
    ("return event", b"null", b"{}"),
])
def test_script_output_is_go_json(script: str, data: bytes, expected: bytes) -> None:
    assert apply_script(script, data) == expected


@pytest.mark.parametrize(("script", "message"), [
    ("return event.x.y", "script:1: attempt to index field 'x' (a nil value)"),
    ("return 5", "transformation script output type is not of lua table (got number)"),
    ("return", "transformation script output type is not of lua table (got nil)"),
    ("return {f = print}", "json: unsupported type: lua function"),
    ("return {x = 0/0}", "json: unsupported value: NaN"),
    ("local t = {} t.t = t return t", "json: the table is nested too deeply (does it contain itself?)"),
    ("while true do end", "timed out after 0.3 s"),
])
def test_script_errors(script: str, message: str) -> None:
    with pytest.raises(TransformError) as info:
        apply_script(script, b"{}", timeout=0.3) if "while" in script else apply_script(script, b"{}")
    assert str(info.value) == message


@pytest.mark.parametrize(("program", "data", "expected"), [
    (".", b'{"b": 1.0, "a": [1, 2.5]}', b'{"a":[1,2.5],"b":1}'),
    ("{x: (.a | tostring)}", b'{"a": 1}', b'{"x":"1"}'),  # Go float64 1 is the integer 1 to gojq
    (".a, .b", b'{"a": {"first": true}, "b": 1}', b'{"first":true}'),  # first output only
    ("{n: .a}", b'{"a": 12345678901234567890}', b'{"n":12345678901234567000}'),  # float64 precision, as Go
    (".body.message *= 2", b'{"body": {"message": "hi"}}', b'{"body":{"message":"hihi"}}'),
    ("{e: env, E: $ENV}", b"{}", b'{"E":{},"e":{}}'),  # the engine's environment stays hidden
    (".", b"null", b"{}"),
])
def test_jq(program: str, data: bytes, expected: bytes) -> None:
    assert apply_jq(program, data) == expected


@pytest.mark.parametrize(("program", "data", "message"), [
    (".a", b'{"a": 1}', "jq transformation output must be a JSON object (got a number)"),
    ("empty", b"{}", "no output available from the jq command execution"),
    ('error("boom")', b"{}", "jq transformation output must be a JSON object (the program failed: boom)"),
    (".", b"[1]", "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    (".", b'"s"', "json: cannot unmarshal string into Go value of type map[string]interface {}"),
    (".", b"{nope", "the event data is not valid JSON: Expecting property name enclosed in double quotes "
                    "(line 1 column 2)"),
    (".", b'{"a": [1, 1e400]}', "json: cannot unmarshal number 1e400 into Go value of type float64"),
    # Go checks the syntax of the whole text before converting any number: the syntax error wins
    (".", b'{"a": 1e400, "b": }', "the event data is not valid JSON: Expecting value (line 1 column 19)"),
])
def test_jq_errors(program: str, data: bytes, message: str) -> None:
    with pytest.raises(TransformError) as info:
        apply_jq(program, data)
    assert str(info.value) == message


def test_jq_that_never_ends_is_stopped() -> None:
    started = time.monotonic()
    with pytest.raises(TransformError, match=r"^jq program exceeded its time limit of 0\.5s$"):
        apply_jq("[range(1e12)] | length", b"{}", timeout=0.5)
    assert time.monotonic() - started < 3.0
    assert apply_jq("{ok: true}", b"{}") == b'{"ok":true}'  # a fresh worker takes over


@pytest.mark.parametrize(("program", "message"), [
    (".a +", "jq program does not compile: jq: error: syntax error, unexpected end of file"),
    ('import "x" as x; .', "jq modules (module/import/include/modulemeta) are not supported"),
    ('# a comment\n  include "x"; .', "jq modules (module/import/include/modulemeta) are not supported"),
    ('"x" | modulemeta', "jq modules (module/import/include/modulemeta) are not supported"),
])
def test_jq_load_time_errors(program: str, message: str) -> None:
    with pytest.raises(TransformConfigError) as info:
        check_jq(program)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("program", [".import", '{include: .a}', '.body | select(.kind == "import")',
                                     ".module_name"])
def test_jq_keys_named_like_directives_are_fine(program: str) -> None:
    check_jq(program)


def test_jq_wins_over_script_and_no_data_is_unchanged() -> None:
    # both kinds are refused at load (the spec model); the stage still runs jq first, as Argo
    both = EventDependencyTransformer.model_construct(jq="{from: \"jq\"}", script="return {from = 'lua'}")
    result = apply_transform(both, event({"a": 1}))
    assert result is not None and result.event is not None
    assert (result.kind, result.event.data) == ("jq", b'{"from":"jq"}')
    unchanged = apply_transform(both, event())
    assert unchanged is not None and unchanged.event is not None and unchanged.event.data is None
    assert apply_transform(EventDependencyTransformer(), event({})) is None
    assert apply_transform(None, event({})) is None


def test_transform_sets_the_content_type() -> None:
    result = apply_transform(EventDependencyTransformer(script="return event"),
                             event({"a": 1}, datacontenttype="text/plain"))
    assert result is not None and result.event is not None
    assert result.event.datacontenttype == "application/json"


def test_check_transform_checks_only_what_runs() -> None:
    # jq wins: the script never runs (both kinds at once are refused by the spec model)
    check_transform(EventDependencyTransformer.model_construct(jq=".", script="this is not lua"))
    with pytest.raises(TransformConfigError) as info:
        check_transform(EventDependencyTransformer(script="return ("))
    assert (info.value.field, str(info.value)) == (
        "script", "Lua script does not compile: script:1: unexpected symbol near '<eof>'")


# ---- in the sensor stage -----------------------------------------------------------------------------------

def test_filters_and_firings_see_the_transformed_event() -> None:
    deps = [dep("A", transform={"jq": ".body.value = 10"},
                filters={"data": [{"path": "body.value", "type": "number", "value": ["10"]}]})]
    stage = SensorStage(sensor(deps, [trigger("t")]))
    result = stage.process(event({"body": {"value": 1}}, datacontenttype="text/plain"), NOW)
    (verdict,) = result.dependencies
    assert (verdict.passed, verdict.error) == (True, None)
    assert verdict.transform is not None and verdict.transform.kind == "jq"
    (firing,) = result.firings
    fired = firing.events["A"]
    assert (fired.data, fired.datacontenttype) == (b'{"body":{"value":10}}', "application/json")
    assert result.event.data == b'{"body": {"value": 1}}'  # the incoming event is not changed


def test_each_dependency_transforms_its_own_copy() -> None:
    deps = [dep("A", transform={"script": "event.who = 'A' return event"}),
            dep("B", transform={"jq": '.who = "B"'})]
    result = SensorStage(sensor(deps, [trigger("t", "A && B")])).process(event({}), NOW)
    (firing,) = result.firings
    assert {name: e.data for name, e in firing.events.items()} == {"A": b'{"who":"A"}', "B": b'{"who":"B"}'}


def test_stored_events_are_the_transformed_ones() -> None:
    deps = [dep("A", "a", "e", transform={"jq": ".seen = true"}), dep("B", "b", "e")]
    stage = SensorStage(sensor(deps, [trigger("t", "A && B")]))
    stage.process(event({"x": 1}, source="a", subject="e"), NOW)
    result = stage.process(event({"y": 2}, source="b", subject="e", event_id="e2"), NOW)
    (firing,) = result.firings
    assert firing.events["A"].data == b'{"seen":true,"x":1}'


def test_transform_error_drops_the_event_for_that_dependency() -> None:
    deps = [dep("A", transform={"jq": ".a"}), dep("B")]
    result = SensorStage(sensor(deps, [trigger("t", "A || B")])).process(event({"a": 1}), NOW)
    assert [(v.name, v.passed, v.error) for v in result.dependencies] == [
        ("A", False, "jq transform error (jq transformation output must be a JSON object (got a number))"),
        ("B", True, None)]
    assert result.dependencies[0].filters.reason == (
        "the transform failed, so the event is dropped for this dependency (Argo)")
    assert [sorted(f.events) for f in result.firings] == [["B"]]


@pytest.mark.parametrize(("extra", "field", "message"), [
    ({"filters": {"exprs": [{"expr": "a ==", "fields": [{"name": "a", "path": "a"}]}]}},
     "spec.dependencies.1.filters.exprs.0.expr", "expression 'a ==' does not compile: Unexpected end of expression"),
    ({"filters": {"exprs": [{"expr": "a == 1", "fields": [{"name": "a", "path": "a"}]},
                            {"expr": "b.c == 1", "fields": [{"name": "b", "path": "b"}]}]}},
     "spec.dependencies.1.filters.exprs.1.expr",
     "expression 'b.c == 1' does not compile: Unable to access unexported field 'c' in token 'b.c'"),
    ({"filters": {"script": "if x then"}}, "spec.dependencies.1.filters.script",
     "Lua script does not compile: script:1: 'end' expected near '<eof>'"),
    ({"transform": {"jq": ".a +"}}, "spec.dependencies.1.transform.jq",
     "jq program does not compile: jq: error: syntax error, unexpected end of file at <top-level>, line 1, "
     "column 4: .a + ^ jq: 1 compile error"),
    ({"transform": {"script": "return {"}}, "spec.dependencies.1.transform.script",
     "Lua script does not compile: script:1: unexpected symbol near '<eof>'"),
])
def test_broken_programs_are_load_time_errors(extra: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(StageConfigError) as info:
        SensorStage(sensor([dep("ok"), dep("X", **extra)], [trigger("t")]))
    assert (info.value.field, str(info.value)) == (field, f"{field}: {message}")


def test_new_filter_kinds_are_accepted_at_load() -> None:
    SensorStage(sensor([dep("X", filters={
        "exprs": [{"expr": "a == 1", "fields": [{"name": "a", "path": "a"}]}],
        "time": {"start": "09:00:00", "stop": "17:00:00", "timezone": "Europe/Paris"},
        "script": "return true"}, transform={"jq": "."})], [trigger("t")]))
