"""The http trigger's `cloudEvent` option: the request carries the event as a CloudEvent (binary or structured)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sensorium.engine.core.cloudevent import decode_structured
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.located import ConfigErrors
from sensorium.sensors.spec import Sensor
from sensorium.triggers.cloudevent_body import CloudEventBodyError, percent_encode
from sensorium.triggers.httprequest import HttpRequest, build_request, check_http_spec
from sensorium.triggers.spec import Trigger

from .helpers import event

EVENT = event(b'{"order":7}', id="e-1", source="kyma", subject="publisher", type="sap.kyma.custom.shop.order.v1",
              extensions={"tenant": "acme", "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})


def build(http: dict[str, Any], events: dict[str, Any] | None = None) -> HttpRequest:
    t = Trigger.model_validate({"template": {"name": "t", "http": {"url": "http://sink/p", **http}}})
    check_http_spec(t.template, t.parameters)
    return build_request(t.template, t.parameters, {"d": EVENT} if events is None else events, Secrets(environ={}))


def test_binary_mode_sends_every_attribute_and_extension_as_ce_headers_and_the_data_as_body() -> None:
    r = build({"cloudEvent": "binary", "headers": {"Authorization": "Bearer x", "CE-ID": "mine"}})
    assert r.headers == (("Authorization", "Bearer x"), ("ce-specversion", "1.0"), ("ce-id", "e-1"),
                         ("ce-source", "kyma"), ("ce-type", "sap.kyma.custom.shop.order.v1"),
                         ("ce-subject", "publisher"), ("ce-time", "2026-01-02T03:04:05.678Z"),
                         ("ce-tenant", "acme"), ("ce-traceparent", EVENT.extensions["traceparent"]),
                         ("Content-Type", "application/json"))
    assert r.body == b'{"order":7}'


def test_binary_mode_without_content_type_or_data_sends_neither() -> None:
    bare = event(None, content_type="", id="e-2", subject="")
    r = build({"cloudEvent": {"mode": "binary"}}, {"d": bare})
    assert [k for k, _ in r.headers] == ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time"]
    assert r.body == b""


def test_structured_mode_is_the_whole_event_as_cloudevents_json() -> None:
    r = build({"cloudEvent": "structured"})
    assert r.headers == (("Content-Type", "application/cloudevents+json; charset=UTF-8"),)
    body = json.loads(r.body)
    assert body["data"] == {"order": 7} and body["tenant"] == "acme" and body["id"] == "e-1"
    assert decode_structured(r.body) == EVENT


def test_structured_mode_keeps_binary_data_as_base64() -> None:
    r = build({"cloudEvent": "structured"}, {"d": event(b"\x00\xff", content_type="application/octet-stream")})
    assert json.loads(r.body)["data_base64"] == "AP8="


def test_header_values_are_percent_encoded_as_the_binding_says() -> None:
    assert percent_encode("plain-value_1.2/3") == "plain-value_1.2/3"
    assert percent_encode('a b"c%d') == "a%20b%22c%25d"
    assert percent_encode("Grüße\n") == "Gr%C3%BC%C3%9Fe%0A"
    r = build({"cloudEvent": "binary"}, {"d": event(subject="line\r\nInjected: 1")})
    assert ("ce-subject", "line%0D%0AInjected:%201") in r.headers


def test_the_named_dependency_is_sent_and_a_missing_one_fails_the_firing() -> None:
    other = event(b'{"x":1}', id="other")
    r = build({"cloudEvent": {"mode": "binary", "dependencyName": "b"}}, {"a": EVENT, "b": other})
    assert ("ce-id", "other") in r.headers and r.body == b'{"x":1}'
    with pytest.raises(CloudEventBodyError, match="dependency 'b' has no event in this firing"):
        build({"cloudEvent": {"mode": "binary", "dependencyName": "b"}}, {"a": EVENT})


def test_an_extension_name_that_cannot_be_a_header_fails_the_firing_terminally() -> None:
    with pytest.raises(CloudEventBodyError, match="cannot be sent as a ce- header") as caught:
        build({"cloudEvent": "binary"}, {"d": event(extensions={"bad name": "v"})})
    assert not caught.value.retryable


def _sensor(deps: list[str], http: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor", "metadata": {"name": "s"},
            "spec": {"dependencies": [{"name": n, "eventSourceName": "es", "eventName": n} for n in deps],
                     "triggers": [{"template": {"name": "t", "http": {"url": "http://sink/", **http}}}]}}


@pytest.mark.parametrize(("deps", "http", "message"), [
    (["a", "b"], {"cloudEvent": "binary"}, "cloudEvent.dependencyName is required"),
    (["a"], {"cloudEvent": {"mode": "binary", "dependencyName": "z"}}, "unknown dependency 'z'"),
    (["a"], {"cloudEvent": "binary", "payload": [{"src": {"dependencyName": "a"}, "dest": "x"}]},
     "payload and cloudEvent exclude each other"),
    (["a"], {"cloudEvent": "binry"}, "binary"),
])
def test_load_time_mistakes(deps: list[str], http: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception, match=message) as caught:
        Sensor.model_validate(_sensor(deps, http))
    assert not isinstance(caught.value, ConfigErrors)


def test_one_dependency_or_or_conditions_need_no_name() -> None:
    sensor = Sensor.model_validate(_sensor(["a"], {"cloudEvent": "binary"}))
    http = sensor.spec.triggers[0].template.http
    assert http is not None and http.cloud_event is not None and http.cloud_event.mode == "binary"
    either = _sensor(["a", "b"], {"cloudEvent": "binary"})
    either["spec"]["triggers"][0]["template"]["conditions"] = "a || b"
    Sensor.model_validate(either)
    either["spec"]["triggers"][0]["template"]["conditions"] = "a && b"
    with pytest.raises(Exception, match="dependencyName is required"):
        Sensor.model_validate(either)


def test_a_routed_event_is_sent_with_its_producers_source_and_subject() -> None:
    routed = event(b'{"o":1}', id="r-1", source="kyma", subject="publisher", type="order.created.v1",
                   extensions={"originsource": "commerce", "originsubject": "orders/7", "tenant": "acme"})
    r = build({"cloudEvent": "binary"}, {"d": routed})
    assert [h for h in r.headers if h[0] in ("ce-source", "ce-subject", "ce-tenant", "ce-originsource")] == [
        ("ce-source", "commerce"), ("ce-subject", "orders/7"), ("ce-tenant", "acme")]
    without_subject = event(extensions={"originsource": "commerce"})
    body = json.loads(build({"cloudEvent": "structured"}, {"d": without_subject}).body)
    assert body["source"] == "commerce" and "subject" not in body and "originsource" not in body


def test_the_schema_accepts_the_shorthand_and_the_object() -> None:
    import jsonschema

    from sensorium.engine.schema import document_schema

    validator = jsonschema.Draft202012Validator(document_schema())
    for option in ("binary", {"mode": "structured", "dependencyName": "a"}):
        assert list(validator.iter_errors(_sensor(["a"], {"cloudEvent": option}))) == []
    for bad in ("binry", {"mode": "binary", "extra": 1}):
        assert list(validator.iter_errors(_sensor(["a"], {"cloudEvent": bad})))


def test_binary_headers_are_bounded() -> None:
    many = {f"x{i}": "v" * 100 for i in range(700)}  # about 75 KiB of headers
    with pytest.raises(CloudEventBodyError, match="bytes of ce- headers, over 65536; use structured mode"):
        build({"cloudEvent": "binary"}, {"d": event(extensions=many)})
    assert len(build({"cloudEvent": "structured"}, {"d": event(extensions=many)}).body) > 70_000
