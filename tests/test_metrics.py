"""Issue 14 items 1 and 4: a running engine's operations port. `/metrics` after a scripted run shows its exact
counts (parsed with prometheus_client's own text parser, so the format is proven to parse), never a secret;
`/readyz` says 503 with the cause while the bus is down and `/livez` stays 200."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sensorium.buses.embedded import EmbeddedNats
from tests.engine_harness import Engine, free_port, unique, write_config
from tests.fixtures_http import HttpSink
from tests.trace_log import TraceLog

pytestmark = [pytest.mark.integration, pytest.mark.nats]

TOKEN = "s3cr3t-metrics-token-value"


def get(port: int, path: str, method: str = "GET", body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> tuple[str, Samples]:
    status, body, headers = get(port, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[s.name, frozenset(s.labels.items())] = s.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def config(folder: Path, sensor: str, source: str, port: int, sink: str) -> Path:
    return write_config(folder, f"""
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {{name: {source}}}
spec:
  webhook:
    e: {{port: "{port}", endpoint: /e, method: POST}}
    typo: {{port: "{port}", endpoint: /typo, method: POST}}
""", f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {sensor}, namespace: prod}}
spec:
  dependencies:
    - name: d
      eventSourceName: {source}
      eventName: e
      filters: {{data: [{{path: body.kind, type: string, value: ["^go$"]}}]}}
  triggers:
    - template:
        name: t
        http:
          url: {sink}/fired
          secureHeaders:
            - name: X-Token
              valueFrom: {{secretKeyRef: {{name: api, key: token}}}}
          payload: [{{src: {{dependencyName: d, dataKey: body.kind}}, dest: kind}}]
      retryStrategy: {{steps: 3, duration: 10ms, jitter: 0}}
""")


async def post(port: int, path: str, body: dict[str, str]) -> tuple[int, str]:
    status, _, headers = await asyncio.to_thread(get, port, path, "POST", json.dumps(body).encode(),
                                                 {"Content-Type": "application/json"})
    return status, headers.get("X-Sensorium-Event-Id", "")


async def test_metrics_of_a_scripted_run_are_exact(nats_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    sensor, source = unique("metered"), unique("src")
    hook, ops = free_port(), free_port()
    secrets = tmp_path / "secrets"
    (secrets / "api").mkdir(parents=True)
    (secrets / "api" / "token").write_text(TOKEN)
    trace = TraceLog()
    engine = Engine(config(tmp_path / "cfg", sensor, source, hook, http_sink.url), nats_url, secrets_dir=secrets,
                    tracer=trace)
    engine.options.ops_port = ops
    engine.options.intake_group = unique("metrics")  # its own intake: no other test's messages are counted
    http_sink.program(200, 500, 500, 500)  # event 1 fires at once; event 2 fails all three attempts
    async with engine:
        assert (await asyncio.to_thread(get, ops, "/readyz"))[0] == 200
        ids = []
        # one at a time: the sink's order holds. `stop` fails the sensor's exact filter `^go$`: with fewer than
        # NARROW_FROM sensors on its key the intake still hands it to the sensor, whose data filter refuses it.
        for body in ({"kind": "go"}, {"kind": "stop"}, {"kind": "go"}):
            status, event_id = await post(hook, "/e", body)
            assert status == 200
            ids.append(event_id)
            await trace.acked(event_id)
        assert (await post(hook, "/typo", {"kind": "go"}))[0] == 200  # no sensor listens to it
        assert (await asyncio.to_thread(get, hook, "/e"))[0] == 405
        text, samples = await asyncio.to_thread(scrape, ops)

    assert TOKEN not in text
    assert len(http_sink.requests) == 4
    s, d, t = {"sensor": sensor}, {"sensor": sensor, "dependency": "d"}, {"sensor": sensor, "trigger": "t"}
    assert value(samples, "sensorium_events_received_total", **s) == 3
    assert value(samples, "sensorium_intake_messages_total", outcome="dispatched") == 3
    assert value(samples, "sensorium_intake_messages_total", outcome="unselected") == 0
    assert value(samples, "sensorium_intake_messages_total", outcome="undecodable") == 0
    assert value(samples, "sensorium_sensor_events_unmatched_total", **s) == 0
    assert value(samples, "sensorium_events_matched_total", **d) == 2
    assert value(samples, "sensorium_events_filtered_total", **d, filter="data") == 1
    assert value(samples, "sensorium_events_filtered_total", **d, filter="context") == 0
    assert value(samples, "sensorium_trigger_firings_total", **t, outcome="success") == 1
    assert value(samples, "sensorium_trigger_firings_total", **t, outcome="failed") == 1
    assert value(samples, "sensorium_trigger_attempts_total", **t) == 4
    assert value(samples, "sensorium_trigger_retries_total", **t) == 2
    assert value(samples, "sensorium_trigger_responses_total", **t, code="200") == 1
    assert value(samples, "sensorium_trigger_responses_total", **t, code="500") == 3
    assert value(samples, "sensorium_trigger_request_duration_seconds_count", **t) == 4
    assert value(samples, "sensorium_trigger_request_duration_seconds_bucket", **t, le="+Inf") == 4
    assert value(samples, "sensorium_event_to_response_duration_seconds_count", **t) == 2
    end_to_end = value(samples, "sensorium_event_to_response_duration_seconds_sum", **t)
    assert end_to_end is not None and 0 < end_to_end < 30
    assert value(samples, "sensorium_dead_letters_total", **s, reason="undecodable") == 0
    e = {"event_source": source, "event_name": "e"}
    typo = {"event_source": source, "event_name": "typo"}
    assert value(samples, "sensorium_webhook_requests_total", **e, code="200") == 3
    assert value(samples, "sensorium_webhook_requests_total", **e, code="405") == 1
    assert value(samples, "sensorium_webhook_requests_total", **typo, code="200") == 1
    assert value(samples, "sensorium_events_unmatched_total", **typo) == 1
    assert value(samples, "sensorium_events_unmatched_total", **e) is None  # a sensor listens to it
    assert value(samples, "sensorium_deliveries_unsettled", **s) == 0
    assert value(samples, "sensorium_bus_connected") == 1
    argo = {"namespace": "prod", "sensor_name": sensor, "trigger_name": "t"}
    assert value(samples, "argo_events_action_triggered_total", **argo) == 1
    assert value(samples, "argo_events_action_failed_total", **argo) == 1
    assert value(samples, "argo_events_action_duration_milliseconds_count", **argo) == 2
    sent = {"namespace": "", "eventsource_name": source, "event_name": "e"}
    assert value(samples, "argo_events_events_sent_total", **sent) == 3
    assert value(samples, "argo_events_event_processing_duration_milliseconds_count", **sent) == 3
    assert not any(event_id in text for event_id in ids)  # no event id is a label


async def test_readyz_names_a_bus_outage_while_livez_stays_ok(fresh_nats: EmbeddedNats, tmp_path: Path) -> None:
    sensor, ops = unique("ready"), free_port()
    folder = write_config(tmp_path / "cfg", f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {sensor}}}
spec:
  dependencies: [{{name: d, eventSourceName: s, eventName: e}}]
  triggers: [{{template: {{name: t, log: {{}}}}}}]
""")
    engine = Engine(folder, fresh_nats.url)
    engine.options.health_port = ops  # the older flag's option still opens the operations port
    async with engine:
        status, body, _ = await asyncio.to_thread(get, ops, "/readyz")
        assert status == 200 and json.loads(body)["causes"] == []
        await fresh_nats.stop()
        for _ in range(100):
            status, body, _ = await asyncio.to_thread(get, ops, "/readyz")
            if status == 503:
                break
            await asyncio.sleep(0.1)
        report = json.loads(body)
        assert status == 503 and report["status"] == "unavailable"
        assert any(cause.startswith(f"bus {fresh_nats.url} is ") for cause in report["causes"]), report
        assert (await asyncio.to_thread(get, ops, "/healthz"))[0] == 503  # the older name answers the same
        live, live_body, _ = await asyncio.to_thread(get, ops, "/livez")
        assert live == 200 and json.loads(live_body) == {"status": "ok"}
        _, samples = await asyncio.to_thread(scrape, ops)
        assert value(samples, "sensorium_bus_connected") == 0
        await fresh_nats.start()
        for _ in range(150):
            status, body, _ = await asyncio.to_thread(get, ops, "/readyz")
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200, body

