"""dlqTrigger: fires with the same events after the trigger's last retry failed (no atLeastOnce needed)."""

from __future__ import annotations

from pathlib import Path

from tests.engine_harness import Engine, event, publish, unique, write_config
from tests.fixtures_http import HttpSink, Reply
from tests.trace_log import TraceLog


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
    trace = TraceLog()
    engine = Engine(write_config(tmp_path, sensor), nats_url, tracer=trace)
    lost, later = event(source, "e", b'{"id":"o-7"}'), event(source, "e", b'{"id":"o-8"}')
    async with engine:
        await publish(nats_url, lost)
        [acked] = await trace.acked(lost, timeout=20)  # acknowledged once both finished
    assert acked.action == "ack"
    assert [(r.path, r.body) for r in http_sink.requests] == [
        ("/primary", b'{"id":"o-7"}'), ("/primary", b'{"id":"o-7"}'), ("/dlq", b'{"lost":"o-7"}')]
    http_sink.default = Reply(status=200)
    async with engine:  # nothing comes back: the restarted engine gets only the later event
        await publish(nats_url, later)
        await trace.acked(later, timeout=20)
    assert [r.path for r in http_sink.requests] == ["/primary", "/primary", "/dlq", "/primary"]
    assert trace.steps(lost).count("received") == 1
