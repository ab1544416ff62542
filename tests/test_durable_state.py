"""Durable condition state: `A && B` with A received survives a killed engine, on both buses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine_harness import EngineProcess, event, publish, unique, write_config
from tests.fixtures_http import HttpSink
from tests.markers import BUSES
from tests.trace_log import JsonTraceFile


@pytest.mark.parametrize("bus", BUSES)
async def test_partial_match_survives_a_killed_engine(bus: str, request: pytest.FixtureRequest,
                                                      http_sink: HttpSink, tmp_path: Path) -> None:
    bus_url = request.getfixturevalue("nats_url") if bus == "jetstream" else (
        "kafka://" + request.getfixturevalue("kafka_broker"))
    a, b = unique("a"), unique("b")
    folder = write_config(tmp_path, f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {unique("durable-and")}}}
spec:
  dependencies:
    - {{name: dep-a, eventSourceName: {a}, eventName: e}}
    - {{name: dep-b, eventSourceName: {b}, eventName: e}}
  triggers:
    - template:
        name: both
        conditions: dep-a && dep-b
        http:
          url: {http_sink.url}/both
          payload:
            - {{src: {{dependencyName: dep-a, dataKey: v}}, dest: a}}
            - {{src: {{dependencyName: dep-b, dataKey: v}}, dest: b}}
""")
    trace = JsonTraceFile(tmp_path / "trace-1.jsonl")
    first = EngineProcess(folder, bus_url, *trace.args())
    await first.start()
    try:
        from_a = event(a, "e", b'{"v":"from-a"}')
        await publish(bus_url, from_a)
        [acked] = await trace.acked(from_a)  # A is processed and its state stored ...
        assert acked["reason"] == "condition state stored"
    finally:
        await first.kill()  # ... before the engine dies
    assert http_sink.requests == []
    trace = JsonTraceFile(tmp_path / "trace-2.jsonl")
    second = EngineProcess(folder, bus_url, *trace.args())
    await second.start()
    try:
        from_b = event(b, "e", b'{"v":"from-b"}')
        await publish(bus_url, from_b)
        await trace.acked(from_b, timeout=30)  # settled: its firing finished
    finally:
        assert await second.terminate() == 0
    assert [r.json() for r in http_sink.requests] == [{"a": "from-a", "b": "from-b"}]  # A's state was restored
