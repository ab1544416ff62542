"""Issue 11: a sensor stuck on pathological events (a backtracking Lua pattern, a template that runs long) does not
delay another sensor in the same engine: each such event is cut at the per-event limit (1 s) with the reason in
the trace, and the other sensor's firings keep their latency. Real engine, real nats-server, real HTTP sink."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sensorium.engine.trace.records import DependencyMatched
from tests.engine_harness import Engine, event, publish, unique, write_config
from tests.fixtures_http import HttpSink
from tests.trace_log import TraceLog

STUCK = """
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {name}}}
spec:
  dependencies:
    - name: lua
      eventSourceName: {source}
      eventName: lua
      filters:
        script: "return string.find(event.s, string.rep('a*', 30) .. 'b') ~= nil"
    - name: tpl
      eventSourceName: {source}
      eventName: tpl
      filters:
        data:
          - path: s
            type: string
            value: ["x"]
            template: >-
              {{{{ range $i := 170 }}}}{{{{ range $j := 170 }}}}{{{{ $_ := sha256sum $.Input }}}}{{{{ end }}}}
              {{{{- end }}}}x
  triggers:
    - template:
        name: never
        conditions: "lua || tpl"
        http: {{url: "{url}/stuck"}}
"""

FAST = """
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {name}}}
spec:
  dependencies:
    - name: ping
      eventSourceName: {source}
      eventName: ping
      filters:
        data:
          - {{path: n, type: number, comparator: ">=", value: ["0"]}}
  triggers:
    - template:
        name: pong
        http: {{url: "{url}/fast"}}
"""

LUA_BOMBS, TEMPLATE_BOMBS, PINGS = 3, 2, 12


async def test_a_stuck_sensor_does_not_delay_another(nats_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    stuck_source, fast_source = unique("stuck"), unique("fast")
    config = write_config(tmp_path / "config",
                          STUCK.format(name=unique("stuck"), source=stuck_source, url=http_sink.url),
                          FAST.format(name=unique("fast"), source=fast_source, url=http_sink.url))
    tracer = TraceLog()
    engine = Engine(config, nats_url, tracer=tracer)
    bombs = [event(stuck_source, "lua", b'{"s": "' + b"a" * 40 + b'"}') for _ in range(LUA_BOMBS)] + \
        [event(stuck_source, "tpl", b'{"s": "' + b"a" * 200_000 + b'"}') for _ in range(TEMPLATE_BOMBS)]
    latencies: list[float] = []
    async with engine:
        await publish(nats_url, event(fast_source, "ping", b'{"n": 0}'))  # warm-up: connections, first firing
        await http_sink.wait_for(1, timeout=20)
        chewing_since = time.monotonic()
        await publish(nats_url, *bombs)
        await asyncio.sleep(0.3)  # the stuck sensor is now inside its first bomb
        for n in range(PINGS):
            started = time.monotonic()
            await publish(nats_url, event(fast_source, "ping", b'{"n": %d}' % (n + 1)))
            await http_sink.wait_for(n + 2, timeout=10)
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.15)
        pings_done = time.monotonic()
        bomb_ids = {b.id for b in bombs}
        found = await tracer.wait(lambda r: isinstance(r, DependencyMatched) and r.event in bomb_ids, len(bombs),
                                  timeout=10)  # the bombs need about 1 s each
        verdicts = [r for r in found if isinstance(r, DependencyMatched)]
    assert all(r.path == "/fast" for r in http_sink.requests)
    # the stuck sensor was still chewing while every ping was answered
    assert pings_done - chewing_since < (LUA_BOMBS + TEMPLATE_BOMBS) * 1.0
    print("latencies ms:", [round(x * 1000) for x in latencies])
    assert max(latencies) < 0.5, f"fast sensor latencies while the other chewed: {latencies}"
    assert len(verdicts) == len(bombs)
    for verdict in verdicts:
        assert not verdict.passed and verdict.error is not None and "timed out after 1.0 s" in verdict.error
