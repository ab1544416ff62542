"""The http trigger's `cloudEvent` option end to end: bus -> sensor -> a real HTTP target gets the CloudEvent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.engine_harness import Engine, event, publish, unique, write_config
from tests.fixtures_http import HttpSink
from tests.trace_log import TraceLog


@pytest.mark.nats
async def test_binary_and_structured_deliveries_carry_every_attribute(nats_url: str, http_sink: HttpSink,
                                                                      tmp_path: Path) -> None:
    source = unique("src")
    sensor = f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {unique("ce")}}}
spec:
  dependencies: [{{name: d, eventSourceName: {source}, eventName: e}}]
  triggers:
    - template:
        name: binary
        http: {{url: "{http_sink.url}/binary", cloudEvent: binary, headers: {{X-Team: ops}}}}
    - template:
        name: structured
        http: {{url: "{http_sink.url}/structured", cloudEvent: structured}}
"""
    trace = TraceLog()
    sent = event(source, "e", b'{"order": 7}', type="com.example.order", tenant="acme", replayed="false")
    async with Engine(write_config(tmp_path, sensor), nats_url, tracer=trace):
        await publish(nats_url, sent)
        await trace.acked(sent)
    got = {r.path: r for r in http_sink.requests}
    assert sorted(got) == ["/binary", "/structured"]
    binary = got["/binary"]
    ce = [(k.lower(), v) for k, v in binary.headers if k.lower().startswith("ce-")]
    assert ce == [("ce-specversion", "1.0"), ("ce-id", sent.id), ("ce-source", source),
                  ("ce-type", "com.example.order"), ("ce-subject", "e"), ("ce-time", sent.time),
                  ("ce-tenant", "acme"), ("ce-replayed", "false")]
    assert binary.header("Content-Type") == "application/json" and binary.header("X-Team") == "ops"
    assert binary.body == b'{"order": 7}'
    structured = got["/structured"]
    assert structured.header("Content-Type") == "application/cloudevents+json; charset=UTF-8"
    assert json.loads(structured.body) == {"specversion": "1.0", "id": sent.id, "source": source,
                                           "type": "com.example.order", "subject": "e",
                                           "datacontenttype": "application/json", "time": sent.time,
                                           "tenant": "acme", "replayed": "false", "data": {"order": 7}}
