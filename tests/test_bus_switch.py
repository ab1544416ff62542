"""Switching buses is a configuration change: the same sensor on JetStream and on Kafka, by EventBus document."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.engine_harness import Engine, EngineProcess, event, publish, unique, write_config
from tests.fixtures_http import HttpSink
from tests.markers import BUSES
from tests.trace_log import JsonTraceFile, TraceLog, acked_in

ROOT = Path(__file__).resolve().parent.parent


def sensor_yaml(name: str, source: str, sink: str) -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: {name}
spec:
  dependencies:
    - name: payment
      eventSourceName: {source}
      eventName: paid
      filters:
        data:
          - path: body.amount
            type: number
            comparator: ">"
            value: ["100"]
    - name: shipment
      eventSourceName: {source}
      eventName: shipped
  triggers:
    - template:
        name: big-order
        conditions: payment && shipment
        http:
          url: {sink}/orders
          method: POST
          headers: {{Content-Type: application/json, X-Static: "yes"}}
          payload:
            - src: {{dependencyName: payment, dataKey: body.amount, useRawData: true}}
              dest: amount
            - src: {{dependencyName: shipment, dataKey: body.carrier}}
              dest: carrier
            - src: {{dependencyName: payment, contextKey: subject}}
              dest: first
"""


async def test_same_sensor_same_requests_on_both_buses(nats_url: str, kafka_broker: str, http_sink: HttpSink,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", nats_url)
    monkeypatch.setenv("KAFKA_BROKERS", kafka_broker)
    source = unique("shop")
    seen: dict[str, list[tuple[str, str, list[tuple[str, str]], bytes]]] = {}
    for bus, bus_url in (("jetstream", nats_url), ("kafka", "kafka://" + kafka_broker)):
        folder = write_config(tmp_path / bus, sensor_yaml(unique("orders"), source, http_sink.url))
        shutil.copy(ROOT / "examples" / "buses" / f"eventbus-{bus}.yaml", folder / "eventbus.yaml")
        http_sink.reset()
        trace = TraceLog()
        async with Engine(folder, bus_url=None, tracer=trace):
            low = event(source, "paid", b'{"body":{"amount":50}}')
            paid = event(source, "paid", b'{"body":{"amount":250.5}}')
            await publish(bus_url, low, paid)  # the first is filtered out
            await trace.acked(low, paid)
            shipped = event(source, "shipped", b'{"body":{"carrier":"dhl"}}')
            await publish(bus_url, shipped)
            await trace.acked(shipped, timeout=20)  # settled: its firing finished
        seen[bus] = [(r.method, r.path, [h for h in r.headers if h[0].lower() != "host"], r.body)
                     for r in http_sink.requests]
    assert seen["jetstream"] == seen["kafka"]
    ((method, path, headers, body),) = seen["kafka"]
    assert (method, path, body) == ("POST", "/orders", b'{"amount":250.5,"carrier":"dhl","first":"paid"}')
    assert ("X-Static", "yes") in headers and ("Content-Type", "application/json") in headers


@pytest.mark.parametrize("bus", BUSES)
async def test_two_engines_share_one_sensor(bus: str, request: pytest.FixtureRequest, http_sink: HttpSink,
                                            tmp_path: Path) -> None:
    bus_url = request.getfixturevalue("nats_url") if bus == "jetstream" else (
        "kafka://" + request.getfixturevalue("kafka_broker"))
    source = unique("work")
    folder = write_config(tmp_path, f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {unique("shared")}}}
spec:
  dependencies: [{{name: d, eventSourceName: {source}, eventName: e}}]
  triggers:
    - template:
        name: t
        http:
          url: {http_sink.url}/work
          payload: [{{src: {{dependencyName: d, dataKey: n}}, dest: n}}]
""")
    traces = [JsonTraceFile(tmp_path / f"trace-{n}.jsonl") for n in range(2)]
    engines = [EngineProcess(folder, bus_url, *trace.args()) for trace in traces]
    for engine in engines:
        await engine.start()
    try:
        await asyncio.sleep(1.0)  # steady state: both members hold their share (no record marks a rebalance)
        sent = [event(source, "e", f'{{"n":{i}}}'.encode()) for i in range(60)]
        await publish(bus_url, *sent)
        await acked_in(traces, *sent, timeout=40)  # all settled: every firing finished
    finally:
        codes = [await engine.terminate() for engine in engines]
    assert sorted(int(r.json()["n"]) for r in http_sink.requests) == list(range(60))
    assert codes == [0, 0]
