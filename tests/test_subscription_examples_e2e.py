"""The Kyma and Weik.io examples themselves, end to end on a real nats-server against a real HTTP target: the exact
requests each subscription's target receives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.engine_harness import Engine, event, free_port, publish
from tests.fixtures_http import HttpSink
from tests.test_e2e import post
from tests.trace_log import TraceLog

pytestmark = pytest.mark.nats
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def test_weikio_channels_example(nats_url: str, http_sink: HttpSink, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("WEBHOOK_PORT", str(port))
    monkeypatch.setenv("SINK_PORT", str(http_sink.port))
    config = tmp_path / "weikio-channels"
    shutil.copytree(EXAMPLES / "weikio-channels", config)
    trace = TraceLog()
    async with Engine(config, nats_url, tracer=trace):
        status, _ = await post(f"http://127.0.0.1:{port}/orders", b'{"orderId":"A-1001","total":42.5}',
                               {"Content-Type": "application/json"})
        assert status == 200
        await trace.settled(2)  # both subscriptions settled the event
    by_path = {r.path: r for r in http_sink.requests}
    assert sorted(by_path) == ["/audit", "/ops"] and len(http_sink.requests) == 2
    ops, audit = by_path["/ops"], by_path["/audit"]
    assert (ops.method, ops.header("Content-Type")) == ("POST", "application/cloudevents+json; charset=UTF-8")
    structured = ops.json()
    assert sorted(structured) == ["data", "datacontenttype", "id", "source", "specversion", "subject", "time",
                                  "type"]
    assert (structured["source"], structured["subject"], structured["type"]) == ("orders", "orders", "webhook")
    assert structured["data"]["body"] == {"orderId": "A-1001", "total": 42.5}
    assert audit.method == "PUT" and audit.header("ce-id") == structured["id"]
    assert [(k.lower(), v) for k, v in audit.headers if k.lower().startswith("ce-")] == [
        ("ce-specversion", "1.0"), ("ce-id", structured["id"]), ("ce-source", "orders"), ("ce-type", "webhook"),
        ("ce-subject", "orders"), ("ce-time", structured["time"])]
    assert audit.header("Content-Type") == "application/json"
    assert json.loads(audit.body) == structured["data"]


async def test_kyma_example(nats_url: str, http_sink: HttpSink, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SINK_PORT", str(http_sink.port))
    config = tmp_path / "kyma"
    config.mkdir()
    shutil.copy(EXAMPLES / "kyma" / "subscriptions.yaml", config)
    # the publisher EventSource `kyma`: here a placeholder entry (events are put on the bus as the publisher would)
    (config / "publisher.yaml").write_text(f"""
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {{name: kyma}}
spec:
  webhook:
    publisher: {{port: "{free_port()}", endpoint: /publish}}
""")
    legacy = event("kyma", "publisher", b'{"orderId":"O-1"}', type="sap.kyma.custom.commerce.order.created.v1",
                   originsource="commerce")
    workload = event("kyma", "publisher", b'{"account":"acme-01"}', type="Account.Root.Created.v1",
                     originsource="commerce", originsubject="accounts/acme-01", tenant="acme")
    trace = TraceLog()
    async with Engine(config, nats_url, tracer=trace):
        await publish(nats_url, legacy, workload)
        await trace.settled(4)  # two subscriptions, two events
    assert sorted((r.path, r.body) for r in http_sink.requests) == [
        ("/accounts", b'{"account":"acme-01"}'), ("/orders", b'{"orderId":"O-1"}')]
    account = next(r for r in http_sink.requests if r.path == "/accounts")
    assert [(k.lower(), v) for k, v in account.headers if k.lower().startswith("ce-")] == [
        ("ce-specversion", "1.0"), ("ce-id", workload.id), ("ce-source", "commerce"),
        ("ce-type", "Account.Root.Created.v1"), ("ce-subject", "accounts/acme-01"), ("ce-time", workload.time),
        ("ce-tenant", "acme")]
    order = next(r for r in http_sink.requests if r.path == "/orders")
    assert (order.header("ce-source"), order.header("ce-type")) == (
        "commerce", "sap.kyma.custom.commerce.order.created.v1")
