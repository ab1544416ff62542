"""Issue 14 item 2: a webhook call carrying a W3C `traceparent` produces spans at a real OTLP receiver (event,
firing, one per attempt, linked parent to child under the caller's span) and a trigger request carrying the same
trace id; with tracing off the caller's context still reaches the target unchanged."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest

from tests.engine_harness import Engine, free_port, unique, write_config
from tests.fixtures_http import HttpSink
from tests.otlp_receiver import OtlpReceiver
from tests.trace_log import TraceLog

pytestmark = [pytest.mark.integration, pytest.mark.nats]

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{CALLER}-01"
TRACESTATE = "congo=t61rcWkgMzE"


def config(folder: Path, sensor: str, source: str, port: int, sink: str) -> Path:
    return write_config(folder, f"""
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {{name: {source}}}
spec:
  webhook:
    e: {{port: "{port}", endpoint: /e, method: POST}}
""", f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {sensor}}}
spec:
  dependencies: [{{name: d, eventSourceName: {source}, eventName: e}}]
  triggers:
    - template:
        name: t
        http:
          url: {sink}/fired
          payload: [{{src: {{dependencyName: d, dataKey: body.kind}}, dest: kind}}]
      retryStrategy: {{steps: 3, duration: 10ms, jitter: 0}}
""")


def post(port: int, headers: dict[str, str]) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/e", data=json.dumps({"kind": "go"}).encode(),
                                     method="POST", headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return str(response.headers["X-Sensorium-Event-Id"])


async def test_spans_reach_an_otlp_receiver_and_the_target_sees_the_trace(
        nats_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    receiver = OtlpReceiver()
    await receiver.start()
    sensor, source, hook = unique("traced"), unique("src"), free_port()
    trace = TraceLog()
    engine = Engine(config(tmp_path / "cfg", sensor, source, hook, http_sink.url), nats_url, tracer=trace)
    engine.options.otlp_traces_url = receiver.endpoint + "/v1/traces"
    http_sink.program(500, 200)  # the first attempt fails: a retry follows
    try:
        async with engine:
            event_id = await asyncio.to_thread(post, hook, {"traceparent": TRACEPARENT, "tracestate": TRACESTATE})
            await trace.acked(event_id)
        # stopping the engine flushed the batch processor: the spans are at the receiver now
    finally:
        await receiver.stop()

    assert receiver.posts and set(receiver.posts) == {"application/x-protobuf"}
    spans = [s for s in receiver.spans if s.trace_id == TRACE]
    assert sorted(s.name for s in spans) == ["attempt", "attempt", f"event {sensor}", "fire t"]
    assert all(s.service == "sensorium" for s in spans)
    (event,) = [s for s in spans if s.name.startswith("event ")]
    (firing,) = [s for s in spans if s.name == "fire t"]
    attempts = sorted((s for s in spans if s.name == "attempt"), key=lambda s: s.attributes["sensorium.attempt"])
    assert event.parent_id == CALLER  # the webhook caller's span
    assert event.attributes["cloudevents.event_id"] == event_id
    assert event.attributes["sensorium.sensor"] == sensor and event.attributes["sensorium.firings"] == 1
    assert firing.parent_id == event.span_id
    assert firing.attributes["sensorium.trigger"] == "t" and firing.attributes["sensorium.success"] is True
    assert [a.parent_id for a in attempts] == [firing.span_id] * 2
    assert [a.attributes["http.response.status_code"] for a in attempts] == [500, 200]
    assert [a.attributes["http.request.resend_count"] for a in attempts] == [0, 1]
    assert [a.attributes["sensorium.retry_follows"] for a in attempts] == [True, False]
    assert [a.status_code for a in attempts] == [2, 0]  # the 500 is an error

    sent = http_sink.requests
    assert len(sent) == 2
    # each request names its own attempt span as the parent, in the caller's trace, with the caller's tracestate
    assert [r.header("traceparent") for r in sent] == [f"00-{TRACE}-{a.span_id}-01" for a in attempts]
    assert [r.header("tracestate") for r in sent] == [TRACESTATE] * 2


async def test_tracing_off_still_hands_the_callers_context_to_the_target(
        nats_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    sensor, source, hook = unique("untraced"), unique("src"), free_port()
    trace = TraceLog()
    engine = Engine(config(tmp_path / "cfg", sensor, source, hook, http_sink.url), nats_url, tracer=trace)
    async with engine:
        first = await asyncio.to_thread(post, hook, {"traceparent": TRACEPARENT, "tracestate": TRACESTATE})
        await trace.acked(first)
        second = await asyncio.to_thread(post, hook, {"traceparent": "00-" + "z" * 32 + "-" + CALLER + "-01"})
        await trace.acked(second)
    with_context, hostile = http_sink.requests
    assert with_context.header("traceparent") == TRACEPARENT and with_context.header("tracestate") == TRACESTATE
    assert hostile.header("traceparent") is None and hostile.header("tracestate") is None
