"""dlqTrigger: fires with the same events after the trigger's last retry failed (no atLeastOnce needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.engine_harness import Engine, event, publish, unique, write_config
from tests.fixtures_http import HttpSink, Reply


async def test_dead_letter_fires_after_last_retry(nats_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    source = unique("src")
    sensor = f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {unique("dlq")}}}
spec:
  dependencies: [{{name: order, eventSourceName: {source}, eventName: e}}]
  triggers:
    - template:
        name: primary
        http:
          url: {http_sink.url}/primary
          payload: [{{src: {{dependencyName: order, dataKey: id}}, dest: id}}]
      retryStrategy: {{steps: 2, duration: 10ms, jitter: 0}}
      dlqTrigger:
        template:
          name: parking-lot
          http:
            url: {http_sink.url}/dlq
            payload: [{{src: {{dependencyName: order, dataKey: id}}, dest: lost}}]
"""
    http_sink.default = Reply(status=500)
    http_sink.program(500, 500, 200)  # two failed attempts of `primary`, then the dead-letter POST succeeds
    engine = Engine(write_config(tmp_path, sensor), nats_url)
    async with engine:
        await publish(nats_url, event(source, "e", b'{"id":"o-7"}'))
        got = await http_sink.wait_for(3, timeout=20)
        await asyncio.sleep(0.5)
    assert [(r.path, r.body) for r in got] == [
        ("/primary", b'{"id":"o-7"}'), ("/primary", b'{"id":"o-7"}'), ("/dlq", b'{"lost":"o-7"}')]
    async with engine:  # acknowledged once both finished: nothing comes back
        await asyncio.sleep(1.5)
    assert len(http_sink.requests) == 3
