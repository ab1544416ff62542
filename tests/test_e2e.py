"""End to end, on a real bus (JetStream and Kafka): webhook or publish -> bus -> sensor -> real HTTP sink."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from sensorium.buses.base import EventKey
from tests.engine_harness import Engine, EngineProcess, event, free_port, publish, unique, write_config
from tests.fixtures_http import HttpSink
from tests.trace_log import TraceLog


def webhook_source(name: str, port: int, event_name: str = "example") -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: {name}
spec:
  webhook:
    {event_name}:
      port: "{port}"
      endpoint: /{event_name}
      method: POST
"""


async def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.text()


async def test_webhook_to_http_trigger_exact_request(bus_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    source, port = unique("hook"), free_port()
    (tmp_path / "secrets" / "api").mkdir(parents=True)
    (tmp_path / "secrets" / "api" / "token").write_text("s3cr3t-value\n")
    sensor = f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: {unique("sensor")}
spec:
  dependencies:
    - name: order
      eventSourceName: {source}
      eventName: example
      filters:
        context:
          type: webhook
        data:
          - path: body.amount
            type: number
            comparator: ">="
            value: ["10"]
          - path: header.X-Shop.0
            type: string
            value: ["^eu-"]
  triggers:
    - template:
        name: forward
        http:
          url: {http_sink.url}/orders?src=sensorium
          method: PUT
          headers:
            Content-Type: application/json
          secureHeaders:
            - name: X-Token
              valueFrom:
                secretKeyRef: {{name: api, key: token}}
          payload:
            - src: {{dependencyName: order, dataKey: body.amount}}
              dest: amount
            - src: {{dependencyName: order, dataKey: body.amount, useRawData: true}}
              dest: rawAmount
            - src: {{dependencyName: order, contextKey: source}}
              dest: origin.source
            - src: {{dependencyName: order, jsonPath: "$.body.items[*].sku", useRawData: true}}
              dest: skus
            - src: {{dependencyName: order, jmesPath: "body.items[?qty > `1`].sku | [0]"}}
              dest: bulk
            - src: {{dependencyName: order, dataKey: body.missing, value: none}}
              dest: fallback
"""
    config = write_config(tmp_path / "config", webhook_source(source, port), sensor)
    trace = TraceLog()
    async with Engine(config, bus_url, secrets_dir=tmp_path / "secrets", tracer=trace):
        body = {"amount": 12.50, "items": [{"sku": "a1", "qty": 1}, {"sku": "b2", "qty": 3}]}
        status, _ = await post(f"http://127.0.0.1:{port}/example", json.dumps(body).encode(),
                               {"Content-Type": "application/json", "X-Shop": "eu-west"})
        assert status == 200
        # filtered out: amount below 10, and wrong shop
        assert (await post(f"http://127.0.0.1:{port}/example", b'{"amount": 5}', {"X-Shop": "eu-1"}))[0] == 200
        assert (await post(f"http://127.0.0.1:{port}/example", b'{"amount": 50}', {"X-Shop": "us-1"}))[0] == 200
        acks = await trace.settled(3)  # all three settled: the one that passed has fired, the others were dropped
    assert [a.reason for a in acks].count("nothing to fire") == 2
    assert len(http_sink.requests) == 1
    request = http_sink.requests[0]
    assert (request.method, request.path, request.query) == ("PUT", "/orders", "src=sensorium")
    assert request.header("Content-Type") == "application/json"
    assert request.header("X-Token") == "s3cr3t-value"
    assert request.body == (b'{"amount":"12.5","rawAmount":12.5,"origin":{"source":"' + source.encode()
                            + b'"},"skus":["a1","b2"],"bulk":"b2","fallback":"none"}')


async def test_event_published_while_engine_stopped_is_delivered(bus_url: str, http_sink: HttpSink,
                                                                 tmp_path: Path) -> None:
    source = unique("src")
    sensor = f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {unique("durable")}}}
spec:
  dependencies: [{{name: d, eventSourceName: {source}, eventName: e}}]
  triggers:
    - template:
        name: t
        http:
          url: {http_sink.url}/got
          payload: [{{src: {{dependencyName: d, dataKey: n}}, dest: n}}]
"""
    trace = TraceLog()
    engine = Engine(write_config(tmp_path, sensor), bus_url, tracer=trace)
    first, second, third = (event(source, "e", b'{"n":%d}' % n) for n in (1, 2, 3))
    async with engine:
        await publish(bus_url, first)
        await trace.acked(first)
    await publish(bus_url, second, third)
    async with engine:
        await trace.acked(second, third, timeout=20)
    assert sorted(r.json()["n"] for r in http_sink.requests) == ["1", "2", "3"]
    assert trace.steps(first).count("received") == 1  # not delivered again to the restarted engine


async def test_retries_until_success_and_acks_once(bus_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    source = unique("src")
    sensor = f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {unique("retry")}}}
spec:
  dependencies: [{{name: d, eventSourceName: {source}, eventName: e}}]
  triggers:
    - template:
        name: t
        http:
          url: {http_sink.url}/flaky
          payload: [{{src: {{dependencyName: d, dataKey: a}}, dest: a}}]
      retryStrategy: {{steps: 3, duration: 50ms, factor: 2, jitter: 0}}
"""
    http_sink.program(503, 503)
    trace = TraceLog()
    engine = Engine(write_config(tmp_path, sensor), bus_url, tracer=trace)
    flaky, later = event(source, "e"), event(source, "e", b'{"a":2}')
    async with engine:
        await publish(bus_url, flaky)
        [acked] = await trace.acked(flaky, timeout=20)
    assert acked.action == "ack"
    assert [r.body for r in http_sink.requests] == [b'{"a":"1"}'] * 3
    # acknowledged exactly once: a restarted engine on the same durable consumer gets only the later event
    async with engine:
        await publish(bus_url, later)
        await trace.acked(later, timeout=20)
    assert [r.body for r in http_sink.requests] == [b'{"a":"1"}'] * 3 + [b'{"a":"2"}']
    assert trace.steps(flaky).count("received") == 1


async def test_two_dependencies_fire_once_with_both(bus_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    a, b = unique("a"), unique("b")
    sensor = f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {unique("pair")}}}
spec:
  dependencies:
    - {{name: dep-a, eventSourceName: {a}, eventName: e}}
    - {{name: dep-b, eventSourceName: {b}, eventName: e}}
  triggers:
    - template:
        name: both
        conditions: "dep-a && dep-b"
        http:
          url: {http_sink.url}/both
          payload:
            - {{src: {{dependencyName: dep-a, dataKey: v}}, dest: a}}
            - {{src: {{dependencyName: dep-b, dataKey: v}}, dest: b}}
"""
    trace = TraceLog()
    async with Engine(write_config(tmp_path, sensor), bus_url, tracer=trace):
        for sent in (event(a, "e", b'{"v":"first-a"}'), event(a, "e", b'{"v":"latest-a"}')):
            await publish(bus_url, sent)
            await trace.acked(sent)  # in order: the second `a` replaces the first
        assert http_sink.requests == []
        last = event(b, "e", b'{"v":"b"}')
        await publish(bus_url, last)
        await trace.acked(last, timeout=20)
    assert len(http_sink.requests) == 1
    assert http_sink.requests[0].json() == {"a": "latest-a", "b": "b"}


async def test_malformed_message_is_skipped_and_others_flow(bus_url: str, http_sink: HttpSink,
                                                            tmp_path: Path) -> None:
    source = unique("src")
    sensor = f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {unique("poison")}}}
spec:
  dependencies: [{{name: d, eventSourceName: {source}, eventName: e}}]
  triggers:
    - template: {{name: t, http: {{url: "{http_sink.url}/ok"}}}}
"""
    trace = TraceLog()
    async with Engine(write_config(tmp_path, sensor), bus_url, tracer=trace):
        await publish(bus_url, raw=[(EventKey(source, "e"), b"not json at all"),
                                    (EventKey(source, "e"), b'{"specversion":"1.0"}')])
        valid = event(source, "e")
        await publish(bus_url, valid)
        acks = await trace.settled(3, timeout=20)
    skipped = [a for a in acks if a.event is None]
    assert len(skipped) == 2 and all(": not a CloudEvent: " in a.reason for a in skipped), skipped
    assert [(r.method, r.path) for r in http_sink.requests] == [("POST", "/ok")]


async def test_webhook_rejects_oversized_body(nats_url: str, tmp_path: Path) -> None:
    port = free_port()
    source = webhook_source(unique("hook"), port).replace("method: POST", "method: POST\n      maxPayloadSize: 100")
    async with Engine(write_config(tmp_path, source), nats_url):
        status, _ = await post(f"http://127.0.0.1:{port}/example", b"x" * 101)
        assert status == 413
        status, _ = await post(f"http://127.0.0.1:{port}/example", b"x" * 100)
        assert status == 200


async def test_webhook_answers_503_when_bus_is_down(fresh_nats: object, tmp_path: Path) -> None:
    from sensorium.buses.embedded import EmbeddedNats

    assert isinstance(fresh_nats, EmbeddedNats)
    port = free_port()
    async with Engine(write_config(tmp_path, webhook_source(unique("hook"), port)), fresh_nats.url):
        assert (await post(f"http://127.0.0.1:{port}/example", b"{}"))[0] == 200
        await fresh_nats.stop()
        status, _ = await post(f"http://127.0.0.1:{port}/example", b"{}")
        assert status == 503
        await fresh_nats.start()


async def test_engine_killed_mid_trigger_redelivers(bus_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    from tests.fixtures_http import Reply

    source = unique("src")
    sensor = f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {unique("crash")}}}
spec:
  dependencies: [{{name: d, eventSourceName: {source}, eventName: e}}]
  triggers:
    - template:
        name: slow
        http:
          url: {http_sink.url}/slow
          timeout: 30
          payload: [{{src: {{dependencyName: d, dataKey: a}}, dest: a}}]
"""
    config = write_config(tmp_path, sensor)
    http_sink.program(Reply(status=200, delay=20))
    first = EngineProcess(config, bus_url, "--ack-wait", "3")
    await first.start()
    try:
        await publish(bus_url, event(source, "e"))
        await http_sink.wait_for(1, timeout=20)  # the trigger is running ...
    finally:
        await first.kill()  # ... and the engine dies before it finished
    second = EngineProcess(config, bus_url, "--ack-wait", "3")
    await second.start()
    try:
        got = await http_sink.wait_for(2, timeout=45)
    finally:
        assert await second.terminate() == 0
    assert [r.body for r in got[:2]] == [b'{"a":"1"}', b'{"a":"1"}']
