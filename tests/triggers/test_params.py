"""Parameter rules of reference sections 2.9 and 2.10, with exact bytes."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError

from sensorium.engine.core.errors import ConfigError
from sensorium.engine.goport.goyaml import yaml_to_json
from sensorium.triggers.params import (
    ParamError,
    PayloadPlan,
    Resolved,
    apply_params,
    check_supported,
    construct_payload,
    context_json,
    event_json,
    resolve_param_value,
)
from sensorium.triggers.spec import TriggerParameter, TriggerParameterSource

from .helpers import event, param

DATA = (b'{"body":{"a":"x<y","n":1.50,"big":12345678901234567890,"e":1e3,"t":true,"f":false,"z":null,'
        b'"obj":{"k":"v"},"arr":[1,"two"]},"dot.key":"d","url":"http://from-data"}')
EVENTS = {"d": event(DATA)}
CONTEXT = ('{"id":"e1","source":"webhook","specversion":"1.0","type":"push","datacontenttype":"application/json",'
           '"subject":"sub","time":"2026-01-02T03:04:05Z"}')
WHOLE = '{"context":' + CONTEXT + ',"data":"' + base64.b64encode(DATA).decode() + '"}'


@pytest.mark.parametrize("src,expected", [
    ({"dataKey": "body.a"}, Resolved("x<y", "String")),
    ({"dataKey": "body.n"}, Resolved("1.5", "Number")),
    ({"dataKey": "body.big"}, Resolved("12345678901234567890", "Number")),
    ({"dataKey": "body.e"}, Resolved("1000", "Number")),
    ({"dataKey": "body.t"}, Resolved("true", "True")),
    ({"dataKey": "body.f"}, Resolved("false", "False")),
    ({"dataKey": "body.z"}, Resolved("null", "Null")),
    ({"dataKey": "body.obj"}, Resolved('{"k":"v"}', "JSON")),
    ({"dataKey": "body.arr"}, Resolved('[1,"two"]', "JSON")),
    ({"dataKey": "body.arr.1"}, Resolved("two", "String")),
    ({"dataKey": "body.arr.#"}, Resolved("2", "Number")),
    ({"dataKey": "dot\\.key"}, Resolved("d", "String")),
    ({"contextKey": "subject"}, Resolved("sub", "String")),
    ({"contextKey": "time"}, Resolved("2026-01-02T03:04:05Z", "String")),
    ({"contextKey": "type", "dataKey": "body.a"}, Resolved("x<y", "String")),  # data wins
    ({}, Resolved(WHOLE, "String")),  # whole event, data as base64
    ({"value": "lit"}, Resolved("lit", "String")),  # value is the result when no key is given
    ({"value": ""}, Resolved("", "String")),
    ({"dataKey": "missing", "value": "dflt"}, Resolved("dflt", "String")),
    ({"contextKey": "missing", "value": "dflt"}, Resolved("dflt", "String")),
    ({"jsonPath": "$.body.arr"}, Resolved('[1,"two"]', "JSON")),
    ({"jsonPath": "$.body.arr[*]"}, Resolved('[1,"two"]', "JSON")),
    ({"jsonPath": "$.body.n"}, Resolved("1.5", "Number")),
    ({"jmesPath": "body.arr[1]"}, Resolved("two", "String")),
    ({"jmesPath": "body.obj"}, Resolved('{"k":"v"}', "JSON")),
    ({"jmesPath": "body.nothing", "value": "dflt"}, Resolved("dflt", "String")),
    ({"jsonPath": "$.nothing", "value": "dflt"}, Resolved("dflt", "String")),
    ({"contextKey": "id", "jsonPath": "$.body.a"}, Resolved("x<y", "String")),
])
def test_resolve(src: dict[str, Any], expected: Resolved) -> None:
    assert resolve_param_value(param(**src).src, EVENTS) == expected


@pytest.mark.parametrize("src,message", [
    ({"dataKey": "missing"}, "unable to resolve 'd' parameter value. err: dataKey 'missing' does not exist"),
    ({"contextKey": "nope"}, "unable to resolve 'd' parameter value. err: contextKey 'nope' does not exist"),
    ({"jmesPath": "nothing"}, "unable to resolve 'd' parameter value. err: jmesPath 'nothing' does not exist"),
])
def test_unresolvable_without_value_is_an_error(src: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamError, match=message.replace(".", r"\.")) as info:
        resolve_param_value(param(**src).src, EVENTS)
    assert not info.value.retryable


@pytest.mark.parametrize("content_type,data,reason", [
    ("application/json; charset=utf-8", b'{"a":1}', "unsupported event content type: application/json; charset=utf-8"),
    ("text/plain", b'{"a":1}', "unsupported event content type: text/plain"),
    ("", b'{"a":1}', "unsupported event content type: "),
    ("application/json", b"{not json", "event data is not valid JSON"),
    ("application/json", b'{"a":NaN}', "event data is not valid JSON"),
    ("application/json", None, "event data is not valid JSON"),
])
def test_data_needs_exact_json_or_yaml_content_type(content_type: str, data: bytes | None, reason: str) -> None:
    events = {"d": event(data, content_type)}
    with pytest.raises(ParamError) as info:
        resolve_param_value(param(dataKey="a").src, events)
    assert str(info.value) == f"unable to resolve 'd' parameter value. err: {reason}"
    assert resolve_param_value(param(dataKey="a", value="v").src, events) == Resolved("v", "String")
    # context selection does not look at the data at all
    assert resolve_param_value(param(contextKey="id").src, events) == Resolved("e1", "String")


@pytest.mark.parametrize("data,key,expected", [
    (b"a: 1\nb: [x, 2.0]\n", "b", Resolved('["x",2]', "JSON")),
    (b"z: 1\na: {c: true, b: null}\n", "@this", Resolved('{"a":{"b":null,"c":true},"z":1}', "JSON")),
    (b"flag: n\nf: 1.5e3\no: 0o17\n", "@this", Resolved('{"f":1500,"flag":false,"o":15}', "JSON")),
    (b"t: 2026-01-01\n", "t", Resolved("2026-01-01", "String")),
])
def test_yaml_data_is_converted_like_ghodss_yaml(data: bytes, key: str, expected: Resolved) -> None:
    assert resolve_param_value(param(dataKey=key).src, {"d": event(data, "application/yaml")}) == expected


def test_absent_dependency_gives_value_or_nothing() -> None:
    assert resolve_param_value(param(dep="other", dataKey="a").src, EVENTS) == Resolved(None, "String")
    assert resolve_param_value(param(dep="other", dataKey="a", value="v").src, EVENTS) == Resolved("v", "String")


def test_event_json_exact_bytes() -> None:
    assert event_json(EVENTS["d"]) == WHOLE
    e = event(None, "", subject="a<b>&é", time="")
    assert event_json(e) == (
        '{"context":{"id":"e1","source":"webhook","specversion":"1.0","type":"push","datacontenttype":"",'
        '"subject":"a\\u003cb\\u003e\\u0026é","time":null},"data":null}')
    assert context_json(event(time="2026-01-02T05:04:05.9+02:00")).endswith('"time":"2026-01-02T03:04:05Z"}')
    assert event_json(event(b"")).endswith('"data":""}')


@pytest.mark.parametrize("src,expected", [
    ({"dataTemplate": "{{ .Input.body.a | upper }}"}, Resolved("X<Y", "String")),
    ({"dataTemplate": "{{ .Input.body.n }}"}, Resolved("1.5", "String")),  # Go %v of float64
    ({"dataTemplate": "{{ .Input.body.big }}"}, Resolved("1.2345678901234567e+19", "String")),
    ({"dataTemplate": "{{ .Input.body.obj }}"}, Resolved("map[k:v]", "String")),
    ({"contextTemplate": "{{ .Input.type | title }}-{{ .Input.subject }}"}, Resolved("Push-sub", "String")),
    ({"dataTemplate": "{{ .Input.body.a }}", "contextTemplate": "{{ .Input.id }}"}, Resolved("x<y", "String")),
    ({"dataTemplate": "{{ .Input.body.a }}", "contextKey": "id"}, Resolved("x<y", "String")),
    # a template that renders nothing falls back to the key, then to `value`
    ({"dataTemplate": "{{ .Input.nothing }}", "dataKey": "body.a"}, Resolved("x<y", "String")),
    ({"dataTemplate": "{{ .Input.nothing }}", "value": "dflt"}, Resolved("dflt", "String")),
])
def test_templates(src: dict[str, Any], expected: Resolved) -> None:
    assert resolve_param_value(param(**src).src, EVENTS) == expected


def test_template_parse_error_at_run_time_falls_back() -> None:
    """Refused at load (the spec model); a template rewritten by parameters at run time that does not parse
    falls back to the value, as in Argo."""
    src = TriggerParameterSource.model_validate({"dependencyName": "d", "dataTemplate": "{{ if }}", "value": "dflt"},
                                                context={"runtime": True})
    assert resolve_param_value(src, EVENTS) == Resolved("dflt", "String")


def test_template_without_fallback_is_an_error() -> None:
    with pytest.raises(ParamError, match=r"unable to resolve 'd' parameter value\. err: template evaluated to empty"):
        resolve_param_value(param(dataTemplate="{{ .Input.nothing }}").src, EVENTS)


def test_unsupported_template_constructs_are_rejected_at_construction() -> None:
    with pytest.raises(ValidationError, match="define"):
        param(dataTemplate='{{ define "x" }}{{ end }}')
    with pytest.raises(ValidationError, match="camelcase"):
        param(contextTemplate="{{ .Input.id | camelcase }}")
    with pytest.raises(ValidationError, match="template does not parse"):
        param(dataTemplate="{{ .Input.a")
    check_supported([param(dataTemplate="{{ .Input.a | b64enc }}")])
    with pytest.raises(ConfigError, match="jsonPath"):
        check_supported([param(jsonPath="$[")])
    check_supported([param(dataKey="a"), param(jmesPath="a.b")])


DOC = b'{"name":"t","http":{"url":"http://a","n":1}}'


@pytest.mark.parametrize("p,expected", [
    (param("http.url", value="http://b"), b'{"name":"t","http":{"url":"http://b","n":1}}'),
    (param("http.url", "overwrite", value="http://b"), b'{"name":"t","http":{"url":"http://b","n":1}}'),
    (param("http.url", "append", value="/x"), b'{"name":"t","http":{"url":"http://a/x","n":1}}'),
    (param("http.url", "prepend", value="v1:"), b'{"name":"t","http":{"url":"v1:http://a","n":1}}'),
    (param("http.q", "append", value="v"), b'{"name":"t","http":{"url":"http://a","n":1,"q":"v"}}'),
    (param("http.n", "append", dataKey="body.n", useRawData=True),
     b'{"name":"t","http":{"url":"http://a","n":"11.5"}}'),  # append forces a string
    (param("http.n", dataKey="body.n", useRawData=True), b'{"name":"t","http":{"url":"http://a","n":1.5}}'),
    (param("http.n", dataKey="body.n"), b'{"name":"t","http":{"url":"http://a","n":"1.5"}}'),
    (param("http.o", dataKey="body.obj", useRawData=True),
     b'{"name":"t","http":{"url":"http://a","n":1,"o":{"k":"v"}}}'),
    (param("http.o", dataKey="body.obj"), b'{"name":"t","http":{"url":"http://a","n":1,"o":"{\\"k\\":\\"v\\"}"}}'),
    (param("http.s", dataKey="body.a", useRawData=True),
     b'{"name":"t","http":{"url":"http://a","n":1,"s":"x<y"}}'),  # String stays a string
    (param("http.z", dataKey="body.z", useRawData=True), b'{"name":"t","http":{"url":"http://a","n":1,"z":null}}'),
    (param("http.z", dataKey="body.z"), b'{"name":"t","http":{"url":"http://a","n":1,"z":"null"}}'),
    (param("http.url", dep="absent", dataKey="x"), DOC),  # no value: skipped
    (param("http.h.-1", value="v"), b'{"name":"t","http":{"url":"http://a","n":1,"h":["v"]}}'),
])
def test_apply_params(p: TriggerParameter, expected: bytes) -> None:
    assert apply_params(DOC, [p], EVENTS) == expected


def test_apply_params_errors() -> None:
    with pytest.raises(ParamError, match="path cannot be empty"):
        apply_params(DOC, [TriggerParameter.model_validate(
            {"src": {"dependencyName": "d", "value": "v"}, "dest": ""}, context={"runtime": True})], EVENTS)
    bad_op = TriggerParameter.model_validate(
        {"src": {"dependencyName": "d", "value": "v"}, "dest": "a", "operation": "merge"}, context={"runtime": True})
    with pytest.raises(ParamError, match="unsupported trigger parameter operation: merge"):
        apply_params(DOC, [bad_op], EVENTS)


@pytest.mark.parametrize("params,expected", [
    ([param("a", dataKey="body.a"), param("b.c", dataKey="body.n", useRawData=True)],
     b'{"a":"x<y","b":{"c":1.5}}'),
    ([param("a", value="é<")], b'{"a":"\xc3\xa9\\u003c"}'),
    ([param("", dataKey="body.obj"), param("ignored", value="v")], b'{"k":"v"}'),
    ([param("", dep="absent"), param("a", value="v")], b'{"a":"v"}'),
    ([param("a", dep="absent"), param("b", dep="absent", dataKey="x")], b""),
    ([param("a", dep="absent", dataKey="x"), param("b", value="v")], b'{"b":"v"}'),
    ([param("")], WHOLE.encode()),
    ([param("list.1", dataKey="body.arr.1"), param("list.-1", value="z")], b'{"list":[null,"two","z"]}'),
    ([], b""),
])
def test_construct_payload(params: list[TriggerParameter], expected: bytes) -> None:
    assert construct_payload(EVENTS, params) == expected
    used: list[Any] = []
    assert PayloadPlan(params).build(EVENTS, used) == expected  # the trigger's compiled form: the same bytes
    assert [p for p, _ in used] == params[:len(used)]


def test_construct_payload_fails_on_resolution_error() -> None:
    params = [param("a", value="v"), param("b", dataKey="nope")]
    with pytest.raises(ParamError, match="unable to resolve 'd'"):
        construct_payload(EVENTS, params)
    used: list[Any] = []
    assert PayloadPlan(params).compiled
    with pytest.raises(ParamError, match=r"payload\[1\] \(dest 'b'\): unable to resolve 'd'"):
        PayloadPlan(params).build(EVENTS, used)
    assert [p.dest for p, _ in used] == ["a"]  # the one resolved before the failure, for the trace


@pytest.mark.parametrize("dests,compiled", [
    (["id", "ts", "user"], True), (["a.b", "a.c", "d"], True), (["a", "a.b"], False), (["a.b", "a"], False),
    (["a", "a"], False), (["list.1"], False), (["x.-1"], False), ([""], False), (["a\\.b"], False),
    ([":1"], False), (["a*"], False), (["a-b_c"], True), (["1a"], False),
])
def test_payload_plan_compiles_plain_distinct_keys_only(dests: list[str], compiled: bool) -> None:
    assert PayloadPlan([param(d, value="v") for d in dests]).compiled is compiled


@pytest.mark.parametrize("text,expected", [  # expected bytes produced by ghodss/yaml YAMLToJSON itself
    ("a: 1\nb: [1, 2.0, x]\n", '{"a":1,"b":[1,2,"x"]}'),
    ("z: 1\na: {c: true, b: null}\n", '{"a":{"b":null,"c":true},"z":1}'),
    ("t: 2024-01-01\n", '{"t":"2024-01-01"}'),
    ("f: 1.5e3\ng: 0.1\n", '{"f":1500,"g":0.1}'),
    ("k: yes\nl: on\nn: ~\n", '{"false":null,"k":true,"l":true}'),
    ("n: ~\n", '{"false":null}'),
    ("1: one\n2.5: two\ntrue: t\n", '{"1":"one","2.5":"two","true":"t"}'),
    ("s: 'x<y'\n", '{"s":"x\\u003cy"}'),
    ("", "null"),
    ("---\na: 1\n---\nb: 2\n", '{"a":1}'),
    ("big: 12345678901234567890\n", '{"big":12345678901234567890}'),
    ("h: 0x1F\no: 0o17\np: 017\n", '{"h":31,"o":15,"p":15}'),
    ("e: 1e400\n", '{"e":"1e400"}'),
    ("- a\n- b\n", '["a","b"]'),
])
def test_yaml_to_json(text: str, expected: str) -> None:
    assert yaml_to_json(text) == expected


def test_yaml_float_keys_are_float32_text() -> None:
    """ghodss/yaml writes a float key as FormatFloat(f, 'g', -1, 32) (pinned against Go in tests/goport), with
    +Inf, -Inf and NaN as YAML's .inf, -.inf and .nan."""
    text = "0.1: a\n16777217.0: b\n1e39: c\n.nan: d\n-.inf: e\n0.3333333333: f\n"
    assert yaml_to_json(text) == ('{"-.inf":"e",".inf":"c",".nan":"d","0.1":"a","0.33333334":"f",'
                                  '"1.6777216e+07":"b"}')
