"""Durable condition state: `A && B` with A received survives a killed engine, on both buses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.engine_harness import EngineProcess, event, publish, unique, write_config
from tests.fixtures_http import HttpSink
from tests.markers import BUSES


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
    first = EngineProcess(folder, bus_url)
    await first.start()
    try:
        await publish(bus_url, event(a, "e", b'{"v":"from-a"}'))
        await asyncio.sleep(2.0)  # A is processed and its state stored before the engine dies
    finally:
        await first.kill()
    assert http_sink.requests == []
    second = EngineProcess(folder, bus_url)
    await second.start()
    try:
        assert any("restored condition state" in line and "dep-a" in line for line in second.output)
        await publish(bus_url, event(b, "e", b'{"v":"from-b"}'))
        got = await http_sink.wait_for(1, timeout=30)
        await asyncio.sleep(1.0)
    finally:
        assert await second.terminate() == 0
    assert len(http_sink.requests) == 1
    assert got[0].json() == {"a": "from-a", "b": "from-b"}
