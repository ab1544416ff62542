"""Building the request (pure): order of parameter application, headers, secrets, redaction."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from sensorium.engine.core.secrets import Secrets, env_name
from sensorium.triggers.httprequest import HttpRequest, RequestPlan, SecretError, build_request, check_http_spec
from sensorium.triggers.params import ParamError
from sensorium.triggers.spec import Trigger

from .helpers import event

TOKEN, USER, PASSWORD = "tok-s3cr3t-value", "alice", "pa55-w0rd-xyz"
SECRETS = Secrets(environ={env_name("tok", "value"): TOKEN, env_name("creds", "user"): USER,
                           env_name("creds", "pass"): PASSWORD})
EVENTS = {"d": event(b'{"id":"abc","path":"/hooks","n":7,"key":"id","url":"http://from-data/x"}')}


def trigger(http: dict[str, Any], **extra: Any) -> Trigger:
    return Trigger.model_validate({"template": {"name": "t", "http": {"url": "http://sink/p", **http}}, **extra})


def build(t: Trigger, events: dict[str, Any] | None = None, secrets: Secrets = SECRETS) -> HttpRequest:
    check_http_spec(t.template, t.parameters)
    return build_request(t.template, t.parameters, EVENTS if events is None else events, secrets)


def test_defaults_no_content_type_no_body() -> None:
    r = build(trigger({}))
    assert (r.method, r.url, r.headers, r.body, r.timeout) == ("POST", "http://sink/p", (), b"", 60.0)
    assert build(trigger({"timeout": 0})).timeout == 60.0
    assert build(trigger({"timeout": 3, "method": "GET"})).timeout == 3.0


@pytest.mark.parametrize("http", [
    {},
    {"timeout": 0, "method": "PUT"},
    {"timeout": 3, "headers": {"X-A": "1", "Content-Type": "application/json"}},
    {"payload": []},
    {"payload": [{"src": {"dependencyName": "d", "dataKey": "id"}, "dest": "a.b"},
                 {"src": {"dependencyName": "d", "dataKey": "n", "useRawData": True}, "dest": "n"}]},
    {"payload": [{"src": {"dependencyName": "d", "dataKey": "id"}, "dest": "list.-1"}]},
    {"payload": [{"src": {"dependencyName": "absent"}, "dest": "x"}]},
])
def test_a_fixed_request_decided_once_is_the_request_built_in_full(http: dict[str, Any]) -> None:
    """RequestPlan's shortcut for requests with nothing but a payload to work out gives the same request (and
    the same parameters used) as its general path."""
    t = trigger(http)
    plan, full = RequestPlan(t.template, t.parameters), RequestPlan(t.template, t.parameters)
    full._static = None  # the general path
    used_plan: list[Any] = []
    used_full: list[Any] = []
    assert plan.build(EVENTS, SECRETS, used_plan) == full.build(EVENTS, SECRETS, used_full)
    assert used_plan == used_full


def test_headers_in_argo_order_later_sources_overwrite_same_name() -> None:
    r = build(trigger({
        "headers": {"Content-Type": "application/json", "X-Id": "static", "X-Token": "static",
                    "content-type": "kept"},
        "dynamicHeaders": [{"src": {"dependencyName": "d", "dataKey": "id"}, "dest": "X-Id"},
                           {"src": {"dependencyName": "gone"}, "dest": "X-Gone"}],
        "secureHeaders": [{"name": "X-Token", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "value"}}}],
        "basicAuth": {"username": {"name": "creds", "key": "user"}, "password": {"name": "creds", "key": "pass"}},
    }))
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert r.headers == (("Content-Type", "application/json"), ("X-Id", "abc"), ("X-Token", TOKEN),
                         ("content-type", "kept"), ("Authorization", basic))
    assert r.secret_header_names == {"X-Token", "Authorization"}
    assert r.redacted_headers() == [("Content-Type", "application/json"), ("X-Id", "abc"), ("X-Token", "***"),
                                    ("content-type", "kept"), ("Authorization", "***")]
    for text in (repr(r), repr(r.summary()), str(r.redacted_headers())):
        assert TOKEN not in text and PASSWORD not in text and basic not in text
    assert r.scrub(f"boom {TOKEN} {PASSWORD}") == "boom *** ***"


def test_basic_auth_parts_are_optional_and_host_overrides() -> None:
    r = build(trigger({"basicAuth": {"password": {"name": "creds", "key": "pass"}}, "host": "virtual.example",
                       "headers": {"Host": "ignored"}}))
    assert r.headers == (("Authorization", "Basic " + base64.b64encode(f":{PASSWORD}".encode()).decode()),
                         ("Host", "virtual.example"))


def test_payload_becomes_the_body() -> None:
    r = build(trigger({"payload": [{"src": {"dependencyName": "d", "dataKey": "n"}, "dest": "count"},
                                   {"src": {"dependencyName": "d", "value": "x<y"}, "dest": "meta.v"}]}))
    assert r.body == b'{"count":"7","meta":{"v":"x<y"}}'


def test_parameter_application_order() -> None:
    t = trigger(
        {"parameters": [{"src": {"dependencyName": "d", "dataKey": "path"}, "dest": "url", "operation": "append"},
                        {"src": {"dependencyName": "d", "value": "PUT"}, "dest": "method"},
                        {"src": {"dependencyName": "d", "dataKey": "key"}, "dest": "payload.0.src.dataKey"},
                        {"src": {"dependencyName": "d", "value": "grpc://x"}, "dest": "serverURL"}],
         "payload": [{"src": {"dependencyName": "d", "dataKey": "n"}, "dest": "v"}]},
        parameters=[{"src": {"dependencyName": "d", "dataKey": "url"}, "dest": "http.url"}],
    )
    r = build(t)
    # trigger parameters first (template url from data), then http.parameters (append path), unknown key ignored
    assert (r.method, r.url, r.body) == ("PUT", "http://from-data/x/hooks", b'{"v":"abc"}')


def test_method_is_post_before_http_parameters_run() -> None:
    t = trigger({"parameters": [{"src": {"dependencyName": "d", "value": "/x"}, "dest": "method",
                                 "operation": "prepend"}]})
    assert build(t).method == "/xPOST"


def test_each_firing_starts_from_the_original_spec() -> None:
    t = trigger({"parameters": [{"src": {"dependencyName": "d", "value": "/a"}, "dest": "url",
                                 "operation": "append"}]})
    assert build(t).url == build(t).url == "http://sink/p/a"


def test_parameters_producing_wrong_types_fail_like_go_unmarshal() -> None:
    t = trigger({}, parameters=[{"src": {"dependencyName": "d", "value": "30"}, "dest": "http.timeout"}])
    with pytest.raises(ParamError, match="failed to unmarshal the updated trigger template"):
        build(t)
    raw = trigger({}, parameters=[{"src": {"dependencyName": "d", "dataKey": "n", "useRawData": True},
                                   "dest": "http.timeout"}])
    assert build(raw).timeout == 7.0


def test_parameters_can_set_a_template_at_run_time() -> None:
    # as in Argo: http.parameters rewrite the http object, payload templates included, before the payload is built
    t = trigger({"parameters": [{"src": {"dependencyName": "d", "value": "{{ .Input.id | upper }}-{{ .Input.n }}"},
                                 "dest": "payload.0.src.dataTemplate"}],
                 "payload": [{"src": {"dependencyName": "d", "dataKey": "n"}, "dest": "v"}]})
    assert build(t).body == b'{"v":"ABC-7"}'


def test_errors() -> None:
    t = trigger({"dynamicHeaders": [{"src": {"dependencyName": "d", "dataKey": "nope"}, "dest": "X-Id"}]})
    with pytest.raises(ParamError, match=r"^failed to resolve the value for dynamicHeader X-Id, unable to resolve"):
        build(t)
    missing = trigger({"secureHeaders": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "no",
                                                                                          "key": "pe"}}}]})
    with pytest.raises(SecretError, match="failed to retrieve the value for secureHeader") as info:
        build(missing)
    assert info.value.retryable
    with pytest.raises(SecretError, match="failed to retrieve the password"):
        build(trigger({"basicAuth": {"password": {"name": "no", "key": "pe"}}}))
