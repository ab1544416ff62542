"""W3C trace context on events (engine.core.tracecontext): what the webhook copies onto a CloudEvent, how it
crosses the bus's codec, what an HTTP trigger sends when tracing is off, and hostile headers ignored."""

from __future__ import annotations

import pytest

from sensorium.engine.core.cloudevent import decode_binary, decode_structured, encode_structured
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.tracecontext import (
    MAX_TRACESTATE,
    from_extensions,
    from_headers,
    parse_traceparent,
    parse_tracestate,
)
from sensorium.engine.otel import otlp_traces_url
from sensorium.sources.spec import WebhookContext
from sensorium.sources.webhook import Endpoint, event_from_request
from sensorium.triggers.http import HttpClient, HttpTrigger
from sensorium.triggers.spec import Trigger
from tests.engine_harness import event
from tests.fixtures_http import HttpSink

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("value, expected", [
    (TP, TP),
    (f" {TP}\t", TP),
    ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later-fields", TP),  # a later version's prefix
    (TP + "-x", None),  # version 00 has exactly four fields
    (TP.upper(), None),  # lowercase hex only
    ("ff" + TP[2:], None),  # version ff is invalid
    ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", None),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01", None),
    ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", None),  # short trace id
    ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" + "x" * 600, None),  # over 512 characters
    ("", None), (None, None), ("00-\n", None),
])
def test_traceparent_parsing(value: str | None, expected: str | None) -> None:
    assert parse_traceparent(value) == expected


@pytest.mark.parametrize("value, expected", [
    ("congo=t61rcWkgMzE", "congo=t61rcWkgMzE"),
    ("rojo=00f067aa0ba902b7, ,congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
    ("tenant@vendor=x", "tenant@vendor=x"),
    ("a=b=c", None), ("A=b", None), ("a=b\n", None), ("", None), (",", None),
    (",".join(f"k{i}=v" for i in range(33)), None),  # over 32 members
    ("k=" + "v" * MAX_TRACESTATE, None),
])
def test_tracestate_parsing(value: str, expected: str | None) -> None:
    assert parse_tracestate(value) == expected


def test_headers_to_extensions() -> None:
    assert from_headers([("TraceParent", TP), ("tracestate", "a=1"), ("Tracestate", "b=2")]) == {
        "traceparent": TP, "tracestate": "a=1,b=2"}
    assert from_headers([("traceparent", TP), ("traceparent", TP)]) == {}  # two parents are ambiguous
    assert from_headers([("tracestate", "a=1")]) == {}  # a state without a parent means nothing
    assert from_headers([("traceparent", TP), ("tracestate", "bad state")]) == {"traceparent": TP}
    assert from_extensions({"traceparent": "junk", "tracestate": "a=1"}) == {}


def _endpoint() -> Endpoint:
    return Endpoint("hooks", "push", WebhookContext.model_validate({"endpoint": "/push", "port": "1"}))


def test_webhook_puts_the_context_on_extensions_and_keeps_argos_data() -> None:
    headers = [("Content-Type", "application/json"), ("traceparent", TP), ("tracestate", "a=1")]
    traced = event_from_request(_endpoint(), "POST", headers, b'{"k":1}', "")
    assert traced.extensions == {"traceparent": TP, "tracestate": "a=1"}
    assert traced.data == (b'{"header":{"Content-Type":["application/json"],"Traceparent":["' + TP.encode()
                           + b'"],"Tracestate":["a=1"]},"body":{"k":1}}')  # Argo's shape, headers as sent
    hostile = event_from_request(_endpoint(), "POST", [("traceparent", "x" * 10_000)], b"{}", "")
    assert hostile.extensions == {}


def test_the_context_crosses_the_bus_codec() -> None:
    traced = event_from_request(_endpoint(), "POST", [("traceparent", TP)], b"{}", "")
    wire = encode_structured(traced)
    assert b'"traceparent":"' + TP.encode() + b'"' in wire and b'"data":{"header"' in wire
    assert decode_structured(wire).extensions == {"traceparent": TP}
    binary = decode_binary({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t",
                            "ce-traceparent": TP}, b"{}")
    assert from_extensions(binary.extensions) == {"traceparent": TP}


def test_otlp_endpoint_resolution() -> None:
    assert otlp_traces_url(None, {}) is None
    assert otlp_traces_url("http://c:4318", {}) == "http://c:4318/v1/traces"
    assert otlp_traces_url("http://c:4318/v1/traces", {}) == "http://c:4318/v1/traces"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318/"}
    assert otlp_traces_url(None, env) == "http://base:4318/v1/traces"
    assert otlp_traces_url("http://flag:1", env) == "http://flag:1/v1/traces"
    assert otlp_traces_url(None, {**env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x"}) == "http://t/x"


async def test_trigger_without_tracing_sends_the_events_context(http_sink: HttpSink) -> None:
    plain = Trigger.model_validate({"template": {"name": "t", "http": {"url": http_sink.url + "/a"}}})
    own = Trigger.model_validate({"template": {"name": "t", "http": {
        "url": http_sink.url + "/b", "headers": {"Traceparent": "mine"}}}})
    traced = {"d": event("s", "e", traceparent=TP, tracestate="a=1")}
    async with HttpClient() as client:
        assert (await HttpTrigger(plain, client, Secrets(None)).fire(traced)).success
        assert (await HttpTrigger(plain, client, Secrets(None)).fire({"d": event("s", "e")})).success
        assert (await HttpTrigger(own, client, Secrets(None)).fire(traced)).success
    first, untraced, configured = await http_sink.wait_for(3)
    assert (first.header("traceparent"), first.header("tracestate")) == (TP, "a=1")
    assert untraced.header("traceparent") is None
    assert configured.header("traceparent") == "mine" and configured.header("tracestate") is None
