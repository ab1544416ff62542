"""Kyma Subscriptions end to end: events of the `kyma` publisher on a real bus reach each subscription's sink as
binary-mode CloudEvents (exact `ce-*` headers and body), retried on failure."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import nats
import pytest

from sensorium.buses.base import DEAD_LETTERS
from sensorium.buses.jetstream.stream import dead_letter_subject
from tests.engine_harness import Engine, event, free_port, publish, unique, write_config
from tests.fixtures_http import HttpSink, RecordedRequest
from tests.trace_log import TraceLog


def subscriptions(sink: str, port: int) -> list[str]:
    v1, v2 = unique("v1"), unique("v2")
    return [f"""
apiVersion: eventing.kyma-project.io/v1alpha1
kind: Subscription
metadata: {{name: {v1}, namespace: shop}}
spec:
  filter:
    filters:
      - eventSource: {{property: source, type: exact, value: ""}}
        eventType: {{property: type, type: exact, value: sap.kyma.custom.commerce.order.created.v1}}
  sink: {sink}/v1
""", f"""
apiVersion: eventing.kyma-project.io/v1alpha2
kind: Subscription
metadata: {{name: {v2}}}
spec:
  sink: {sink}/v2
  source: commerce
  types: [order.created.v1, Account.Root.Created.v2]
  config: {{maxInFlightMessages: "4"}}
""", f"""
# the publisher: the engine's own `kyma` EventSource (a placeholder entry here; published events go on the bus)
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {{name: kyma}}
spec:
  webhook:
    publisher: {{port: "{port}", endpoint: /publish}}
"""]


def ce_headers(request: RecordedRequest) -> list[tuple[str, str]]:
    return [(k.lower(), v) for k, v in request.headers if k.lower().startswith("ce-")]


async def test_subscriptions_of_both_versions_get_their_types_as_binary_cloudevents(
        bus_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", *subscriptions(http_sink.url, free_port()))
    order = event("kyma", "publisher", b'{"orderId":"A-1"}', type="sap.kyma.custom.commerce.order.created.v1",
                  tenant="acme")
    account = event("kyma", "publisher", b'{"account":7}', type="sap.kyma.custom.commerce.AccountRoot.Created.v2")
    # as the publisher stores a workload's CloudEvent: routed as kyma/publisher, the producer's source kept
    published = event("kyma", "publisher", b'{"orderId":"A-2"}', type="order.created.v1",
                      originsource="commerce", originsubject="orders")
    elsewhere = event("kyma", "publisher", b"{}", type="order.created.v1", originsource="billing")
    other = event("kyma", "publisher", b"{}", type="sap.kyma.custom.commerce.order.deleted.v1")
    trace = TraceLog()
    async with Engine(config, bus_url, tracer=trace):
        await publish(bus_url, order, account, published, elsewhere, other)
        await trace.settled(10, timeout=30)  # two sensors, five events each
    got = sorted((r.path, r.body) for r in http_sink.requests)
    assert got == [("/v1", b'{"orderId":"A-1"}'), ("/v2", b'{"account":7}'), ("/v2", b'{"orderId":"A-1"}'),
                   ("/v2", b'{"orderId":"A-2"}')]
    workload = next(r for r in http_sink.requests if r.body == b'{"orderId":"A-2"}')
    assert ce_headers(workload) == [("ce-specversion", "1.0"), ("ce-id", published.id), ("ce-source", "commerce"),
                                    ("ce-type", "order.created.v1"), ("ce-subject", "orders"),
                                    ("ce-time", published.time)]
    v1 = next(r for r in http_sink.requests if r.path == "/v1")
    assert (v1.method, v1.header("Content-Type")) == ("POST", "application/json")
    assert ce_headers(v1) == [("ce-specversion", "1.0"), ("ce-id", order.id), ("ce-source", "kyma"),
                              ("ce-type", "sap.kyma.custom.commerce.order.created.v1"),
                              ("ce-subject", "publisher"), ("ce-time", order.time), ("ce-tenant", "acme")]


async def test_a_failing_sink_is_retried_after_a_second(nats_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", *subscriptions(http_sink.url, free_port())[:1],
                          subscriptions(http_sink.url, free_port())[2])
    http_sink.program(503, 500)
    order = event("kyma", "publisher", b'{"n":1}', type="sap.kyma.custom.commerce.order.created.v1")
    trace = TraceLog()
    async with Engine(config, nats_url, tracer=trace):
        start = time.monotonic()
        await publish(nats_url, order)
        await trace.acked(order, timeout=30)
    took = time.monotonic() - start
    assert [r.header("ce-id") for r in http_sink.requests] == [order.id] * 3  # 503, 500, then 200
    assert 3.0 <= took < 10.0, took  # waits of 1 s and 2 s (+10% jitter at most)


async def test_events_posted_to_the_added_publisher_reach_both_versions(
        nats_url: str, http_sink: HttpSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No EventSource `kyma` is loaded: the one the translation adds (a `cloudevents` entry on
    $KYMA_PUBLISHER_PORT, path /publish) takes a legacy event and a workload's binary-mode CloudEvent."""
    port = free_port()
    monkeypatch.setenv("KYMA_PUBLISHER_PORT", str(port))
    config = write_config(tmp_path / "config", *subscriptions(http_sink.url, 0)[:2])
    legacy = (b'{"event-type":"order.created","event-type-version":"v1","event-time":"2026-12-06T10:00:00Z",'
              b'"event-id":"legacy-1","data":{"orderId":"A-1"}}')
    workload = {"ce-specversion": "1.0", "ce-id": "w-1", "ce-source": "commerce", "ce-type": "order.created.v1",
                "ce-subject": "orders/2", "ce-time": "2026-12-06T10:00:01Z", "ce-tenant": "acme",
                "Content-Type": "application/json"}
    async with Engine(config, nats_url), aiohttp.ClientSession() as client:
        async with client.post(f"http://127.0.0.1:{port}/commerce/v1/events", data=legacy,
                               headers={"Content-Type": "application/json"}) as answer:
            assert (answer.status, await answer.json()) == (200, {"event-id": "legacy-1", "status": 200})
        async with client.post(f"http://127.0.0.1:{port}/publish", headers=workload,
                               data=b'{"orderId":"A-2"}') as answer:
            assert answer.status == 204, await answer.text()
        # a workload publishing the full type: both versions have it
        prefixed = {**workload, "ce-id": "w-2", "ce-type": "sap.kyma.custom.commerce.order.created.v1"}
        del prefixed["ce-subject"], prefixed["ce-tenant"]
        async with client.post(f"http://127.0.0.1:{port}/publish", headers=prefixed,
                               data=b'{"orderId":"A-3"}') as answer:
            assert answer.status == 204, await answer.text()
        await http_sink.wait_for(5, timeout=30)
        await asyncio.sleep(0.5)  # nothing more arrives
    got = sorted((r.path, r.header("ce-id") or "", r.body) for r in http_sink.requests)
    assert got == [("/v1", "legacy-1", b'{"orderId":"A-1"}'), ("/v1", "w-2", b'{"orderId":"A-3"}'),
                   ("/v2", "legacy-1", b'{"orderId":"A-1"}'), ("/v2", "w-1", b'{"orderId":"A-2"}'),
                   ("/v2", "w-2", b'{"orderId":"A-3"}')]
    for request in http_sink.requests:
        assert (request.method, request.header("Content-Type")) == ("POST", "application/json")
        if request.header("ce-id") == "legacy-1":
            assert ce_headers(request) == [("ce-specversion", "1.0"), ("ce-id", "legacy-1"), ("ce-source", "commerce"),
                                           ("ce-type", "sap.kyma.custom.commerce.order.created.v1"),
                                           ("ce-time", "2026-12-06T10:00:00Z")]
        elif request.header("ce-id") == "w-2":
            assert ce_headers(request) == [("ce-specversion", "1.0"), ("ce-id", "w-2"), ("ce-source", "commerce"),
                                           ("ce-type", "sap.kyma.custom.commerce.order.created.v1"),
                                           ("ce-time", "2026-12-06T10:00:01Z")]
        else:
            assert ce_headers(request) == [("ce-specversion", "1.0"), ("ce-id", "w-1"), ("ce-source", "commerce"),
                                           ("ce-type", "order.created.v1"), ("ce-subject", "orders/2"),
                                           ("ce-time", "2026-12-06T10:00:01Z"), ("ce-tenant", "acme")]


async def test_an_exhausted_delivery_is_dead_lettered(nats_url: str, http_sink: HttpSink, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Every non-2xx is retried (404 too, as Kyma's dispatcher does); after the last attempt the event is stored on
    sensorium-dlq, not dropped, and the next event is delivered."""
    monkeypatch.setenv("SENSORIUM_DELIVERY_ATTEMPTS", "3")
    monkeypatch.setenv("SENSORIUM_DELIVERY_BACKOFF", "200ms")
    text = subscriptions(http_sink.url, 0)[0]
    name = text.split("metadata: {name: ", 1)[1].split(",", 1)[0]
    config = write_config(tmp_path / "config", text)
    http_sink.program(404, 400, 500)
    failed = event("kyma", "publisher", b'{"n":1}', type="sap.kyma.custom.commerce.order.created.v1")
    ok = event("kyma", "publisher", b'{"n":2}', type="sap.kyma.custom.commerce.order.created.v1")
    trace = TraceLog()
    async with Engine(config, nats_url, tracer=trace):
        await publish(nats_url, failed)
        await trace.acked(failed, timeout=30)
        await publish(nats_url, ok)
        await trace.acked(ok, timeout=30)
    assert [r.header("ce-id") for r in http_sink.requests] == [failed.id] * 3 + [ok.id]
    client = await nats.connect(nats_url)
    try:
        letter = await client.jetstream().get_last_msg(DEAD_LETTERS, dead_letter_subject(name))
    finally:
        await client.close()
    headers = letter.headers or {}
    assert (headers["ce-dlqreason"], headers["ce-dlqsensor"]) == ("undeliverable", name)
    assert "500" in headers["ce-dlqerror"]
    assert json.loads(letter.data or b"")["id"] == failed.id  # the event as the bus held it
