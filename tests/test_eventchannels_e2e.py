"""Weik.io channels end to end on a real bus (JetStream and Kafka): a webhook source's events reach each
subscription's http channel as CloudEvents, and a slow target does not hold up another subscription of the same
source."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import nats
import nats.js.errors
import pytest

from sensorium.buses.base import DEAD_LETTERS
from sensorium.buses.jetstream.stream import dead_letter_subject
from tests.engine_harness import Engine, free_port, unique, write_config
from tests.fixtures_http import HttpSink, Reply
from tests.test_e2e import post
from tests.trace_log import TraceLog


def documents(source: str, port: int, fast: str, slow: str) -> list[str]:
    return [f"""
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {{name: {source}}}
spec:
  webhook:
    {source}: {{port: "{port}", endpoint: /orders}}
""", f"""
apiVersion: weik.io/v1alpha1
kind: EventChannel
metadata: {{name: fast-hook}}
spec: {{type: http, parameters: {{url: "{fast}/fast", method: POST}}}}
---
apiVersion: weik.io/v1alpha1
kind: EventChannel
metadata: {{name: slow-hook}}
spec: {{type: http, parameters: {{url: "{slow}/slow", method: PUT, cloudEventMode: binary}}}}
""", f"""
apiVersion: weik.io/v1alpha1
kind: EventSubscription
metadata: {{name: {unique("to-fast")}}}
spec: {{source: {source}, channel: fast-hook}}
---
apiVersion: weik.io/v1alpha1
kind: EventSubscription
metadata: {{name: {unique("to-slow")}}}
spec: {{source: {source}, channel: slow-hook}}
"""]


async def test_each_subscription_delivers_and_a_slow_target_holds_up_only_its_own(
        bus_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    slow = HttpSink()
    await slow.start()
    slow.default = Reply(status=200, delay=3.0)
    source, port = unique("orders"), free_port()
    config = write_config(tmp_path / "config", *documents(source, port, http_sink.url, slow.url))
    trace = TraceLog()
    try:
        async with Engine(config, bus_url, tracer=trace):
            start = time.monotonic()
            for n in range(5):
                status, _ = await post(f"http://127.0.0.1:{port}/orders", json.dumps({"n": n}).encode(),
                                       {"Content-Type": "application/json"})
                assert status == 200
            fast_got = await http_sink.wait_for(5, timeout=10)
            fast_done = time.monotonic() - start
            await slow.wait_for(5, timeout=15)
            await trace.settled(10, timeout=30)
    finally:
        await slow.stop()
    # the fast target had all five before the slow one answered any (each of its answers takes 3 s)
    assert fast_done < 3.0, fast_done
    assert sorted(r.json()["data"]["body"]["n"] for r in fast_got) == [0, 1, 2, 3, 4]
    first = fast_got[0]
    assert (first.method, first.path, first.header("Content-Type")) == (
        "POST", "/fast", "application/cloudevents+json; charset=UTF-8")
    body = first.json()
    assert {k: body[k] for k in ("specversion", "source", "subject", "type", "datacontenttype")} == {
        "specversion": "1.0", "source": source, "subject": source, "type": "webhook",
        "datacontenttype": "application/json"}
    assert body["data"]["body"] == {"n": body["data"]["body"]["n"]} and body["id"] and body["time"]
    slow_requests = slow.requests
    assert len(slow_requests) == 5 and {r.method for r in slow_requests} == {"PUT"}
    assert {r.header("ce-source") for r in slow_requests} == {source}
    assert sorted(json.loads(r.body)["body"]["n"] for r in slow_requests) == [0, 1, 2, 3, 4]
    # the same events, by id, on both channels
    assert {r.header("ce-id") for r in slow_requests} == {r.json()["id"] for r in fast_got}


async def test_a_delivery_failing_after_its_last_attempt_is_dead_lettered(
        nats_url: str, http_sink: HttpSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 422 is retried too (every non-2xx), then the event is stored on sensorium-dlq, not dropped."""
    monkeypatch.setenv("SENSORIUM_DELIVERY_ATTEMPTS", "2")
    monkeypatch.setenv("SENSORIUM_DELIVERY_BACKOFF", "100ms")
    source, port = unique("orders"), free_port()
    docs = documents(source, port, http_sink.url, http_sink.url)
    name = docs[2].split("metadata: {name: ", 1)[1].split("}", 1)[0]  # the subscription to fast-hook
    config = write_config(tmp_path / "config", docs[0], docs[1], docs[2].split("---")[0])
    http_sink.default = Reply(status=422)
    async with Engine(config, nats_url):
        status, _ = await post(f"http://127.0.0.1:{port}/orders", b'{"n":1}', {"Content-Type": "application/json"})
        assert status == 200
        await http_sink.wait_for(2, timeout=15)
        client = await nats.connect(nats_url)
        try:
            letter = None
            for _ in range(100):  # stored once the last attempt failed
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    letter = await client.jetstream().get_last_msg(DEAD_LETTERS, dead_letter_subject(name))
                    break
                await asyncio.sleep(0.1)
        finally:
            await client.close()
    assert len(http_sink.requests) == 2
    assert letter is not None
    headers = letter.headers or {}
    assert (headers["ce-dlqreason"], headers["ce-dlqsensor"]) == ("undeliverable", name)
    assert json.loads(letter.data or b"")["data"]["body"] == {"n": 1}
