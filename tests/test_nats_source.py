"""The `nats` event source against real nats-servers: Argo's event for a message (JSON body, base64 body, headers,
metadata), in order, a refused publish retried, a queue group sharing messages, credentials, a server that is not
there yet, and the engine running it from an EventSource document to a sensor's trigger."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import pytest

from sensorium.buses.embedded import EmbeddedNats, free_port
from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import BusError
from sensorium.engine.core.secrets import Secrets, env_name
from sensorium.sources.nats import NatsSource, NatsSourceContext
from tests.collected import until
from tests.engine_harness import Engine, order_sensor, unique, write_config
from tests.fixtures_http import HttpSink
from tests.trace_log import TraceLog

pytestmark = pytest.mark.nats

TOKEN = "src-t0ken-value"


def spec(url: str, subject: str, **extra: Any) -> NatsSourceContext:
    return NatsSourceContext.model_validate({"url": url, "subject": subject, **extra})



async def running(entries: list[tuple[str, str, NatsSourceContext]], publish: Callable[[CloudEvent], Awaitable[None]],
                  secrets: Secrets | None = None) -> NatsSource:
    source = NatsSource(entries, publish, secrets or Secrets(None, {}))
    await source.start()
    await until(lambda: len(source.subscribed) == len({(s, n) for s, n, _ in entries}))
    return source


async def test_messages_become_argo_s_events_in_order(nats_url: str) -> None:
    got: list[CloudEvent] = []

    async def publish(event: CloudEvent) -> None:
        got.append(event)

    subject = unique("orders")
    source = await running([("shop", "orders", spec(nats_url, f"{subject}.>", jsonBody=True,
                                                     metadata={"team": "payments"})),
                            ("shop", "raw", spec(nats_url, f"{subject}.raw"))], publish)
    nc = await nats.connect(nats_url)
    try:
        for n in range(5):
            await nc.publish(f"{subject}.created", json.dumps({"n": n}).encode(), headers={"X-Trace": f"t{n}"})
        await nc.publish(f"{subject}.created", b"not json")
        await nc.publish(f"{subject}.raw", b"\x00\x01bytes")
        await nc.flush()
        await until(lambda: len(got) == 8)
    finally:
        await nc.close()
        await source.stop()
    ordered = [e for e in got if e.subject == "orders" and json.loads(e.data or b"")["subject"].endswith(".created")]
    assert [json.loads(e.data or b"")["body"] for e in ordered] == [{"n": n} for n in range(5)] + ["not json"]
    first = json.loads(ordered[0].data or b"")
    assert first == {"subject": f"{subject}.created", "body": {"n": 0}, "header": {"X-Trace": ["t0"]},
                     "metadata": {"team": "payments"}}
    assert (ordered[0].source, ordered[0].type, ordered[0].datacontenttype) == ("shop", "nats", "application/json")
    raw = {e.subject: json.loads(e.data or b"") for e in got
           if json.loads(e.data or b"")["subject"] == f"{subject}.raw"}
    assert base64.b64decode(raw["raw"]["body"]) == b"\x00\x01bytes"  # no jsonBody: base64, as Go's []byte
    assert raw["orders"]["body"] == "\x00\x01bytes"  # the `>` entry (jsonBody) took it too: not JSON, a string


async def test_a_refused_publish_is_retried_and_nothing_is_lost(nats_url: str) -> None:
    got: list[CloudEvent] = []
    refusals = [1, 1]

    async def publish(event: CloudEvent) -> None:
        if refusals:
            refusals.pop()
            raise BusError("bus down")
        got.append(event)

    subject = unique("retry")
    source = await running([("s", "e", spec(nats_url, subject, jsonBody=True))], publish)
    nc = await nats.connect(nats_url)
    try:
        for n in range(3):
            await nc.publish(subject, b'{"n":%d}' % n)
        await nc.flush()
        await until(lambda: len(got) == 3)
    finally:
        await nc.close()
        await source.stop()
    assert [json.loads(e.data or b"")["body"]["n"] for e in got] == [0, 1, 2]


async def test_a_queue_group_shares_the_messages(nats_url: str) -> None:
    firsts: list[CloudEvent] = []
    seconds: list[CloudEvent] = []

    async def first(event: CloudEvent) -> None:
        firsts.append(event)

    async def second(event: CloudEvent) -> None:
        seconds.append(event)

    subject = unique("shared")
    entry = [("s", "e", spec(nats_url, subject, queue="workers"))]
    one, two = await running(entry, first), await running(entry, second)
    nc = await nats.connect(nats_url)
    try:
        for n in range(100):
            await nc.publish(subject, b"%d" % n)
        await nc.flush()
        await until(lambda: len(firsts) + len(seconds) == 100)
    finally:
        await nc.close()
        await one.stop()
        await two.stop()
    assert firsts and seconds  # each message to one member of the group


async def test_a_server_not_there_yet_is_reported_then_served(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    got: list[CloudEvent] = []

    async def publish(event: CloudEvent) -> None:
        got.append(event)

    secrets = Secrets(environ={env_name("nats", "token"): TOKEN})
    entry = spec(f"nats://127.0.0.1:{port}", "late", auth={"token": {"name": "nats", "key": "token"}})
    source = NatsSource([("s", "e", entry)], publish, secrets)
    await source.start()
    try:
        assert source.problems() == [f"nats s/e: connecting to nats://127.0.0.1:{port}"]
        await until(lambda: "cannot subscribe" in source.problems()[0])
        assert source.problems()[0].startswith(f"nats s/e: cannot subscribe at nats://127.0.0.1:{port}")
        assert TOKEN not in source.problems()[0]
        server = EmbeddedNats(tmp_path / "late", port=port, extra_args=["--auth", TOKEN])
        await server.start()
        try:
            await until(lambda: bool(source.subscribed) and not source.problems(), timeout=15)
            nc = await nats.connect(server.url, token=TOKEN)
            await nc.publish("late", b"hello")
            await nc.flush()
            await nc.close()
            await until(lambda: len(got) == 1)
        finally:
            await server.stop()
    finally:
        await source.stop()


def test_argo_s_entry_is_read_and_mistakes_are_refused() -> None:
    full = spec("nats.example:4222", "orders.>", queue="q", jsonBody=True, metadata={"a": "b"},
                connectionBackoff={"duration": "10s", "steps": 5}, auth={"token": {"name": "n", "key": "t"}})
    assert (full.url, full.subject, full.queue, full.json_body) == ("nats.example:4222", "orders.>", "q", True)
    for bad, wanted in (({"url": "http://x:4222"}, "URL scheme 'http' is not supported"),
                        ({"subject": "a..b"}, "empty token"),
                        ({"filter": {"expression": "x"}}, "event source filters are not supported yet")):
        with pytest.raises(ValueError, match=wanted):
            NatsSourceContext.model_validate({"url": "nats://h:4222", "subject": "s", **bad})


async def test_the_engine_runs_an_argo_nats_event_source(nats_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    subject, source = unique("argo"), unique("nats-es")
    documents = (f"""
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {{name: {source}}}
spec:
  nats:
    example:
      url: {nats_url}
      subject: {subject}
      jsonBody: true
""", order_sensor(source, http_sink.url))
    trace = TraceLog()
    async with Engine(write_config(tmp_path, *documents), nats_url, tracer=trace):
        nc = await nats.connect(nats_url)
        try:  # core NATS: a message before the entry subscribed reaches nobody, so publish until one arrives
            async with asyncio.timeout(20):
                while not http_sink.requests:
                    await nc.publish(subject, b'{"order":"o-1"}')
                    await nc.flush()
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()
    assert http_sink.requests[0].json() == {"order": "o-1"}


async def test_a_refused_subscription_is_reported(tmp_path: Path) -> None:
    conf = tmp_path / "perm.conf"
    conf.write_text('authorization { users = [ { user: "u", password: "p", '
                    'permissions: { subscribe: "allowed.>" } } ] }\n')
    server = EmbeddedNats(tmp_path / "perm", extra_args=["-c", str(conf)])
    await server.start()
    secrets = Secrets(environ={env_name("n", "user"): "u", env_name("n", "password"): "p"})
    auth = {"basic": {"username": {"name": "n", "key": "user"}, "password": {"name": "n", "key": "password"}}}
    async def publish(event: CloudEvent) -> None:
        raise AssertionError("nothing may arrive")

    source = NatsSource([("s", "e", spec(server.url, "forbidden", auth=auth))], publish, secrets)
    await source.start()
    try:
        await until(lambda: "refused" in " ".join(source.problems()))
        assert source.problems()[0].startswith("nats s/e: cannot subscribe at nats://127.0.0.1:")
        assert 'the server refused: nats: permissions violation for subscription to "forbidden"' in source.problems()[0]
    finally:
        await source.stop()
        await server.stop()


async def test_a_slow_consumer_s_drops_are_counted_and_reported(nats_url: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """While the bus refuses every event, messages wait (10 here, and 10 in the client) and the rest are
    dropped by the client: counted, logged and reported, never silent."""
    import sensorium.sources.nats as module

    monkeypatch.setattr(module, "PENDING", 10)
    reports: list[str] = []

    async def refuse(event: CloudEvent) -> None:
        raise BusError("bus down")

    subject = unique("flood")
    source = NatsSource([("s", "e", spec(nats_url, subject))], refuse, Secrets(None, {}),
                        report=lambda kind, src, name, problem, status: reports.append(problem))
    await source.start()
    nc = await nats.connect(nats_url)
    try:
        await until(lambda: bool(source.subscribed))
        for n in range(200):
            await nc.publish(subject, b"%d" % n)
        await nc.flush()
        await until(lambda: source.dropped.get("nats s/e", 0) > 0)
        assert any(r.startswith("slow consumer: ") and "dropped so far" in r for r in reports)
    finally:
        await nc.close()
        await source.stop()


async def test_a_message_too_large_for_the_bus_is_logged_and_the_entry_moves_on(
        nats_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """800 KB of bytes become an event of over 1 MiB (base64), which the JetStream bus can never store: one
    clear line naming the entry and the sizes, and the next message still goes through (nothing stalls)."""
    from sensorium.buses.jetstream.bus import JetStreamBus
    from sensorium.engine.app import publish_event

    bus = JetStreamBus(nats_url)
    await bus.start()
    stored: list[CloudEvent] = []

    async def publish(event: CloudEvent) -> None:
        await publish_event(bus, event)
        stored.append(event)

    subject = unique("big")
    source = NatsSource([("s", "e", spec(nats_url, subject))], publish, Secrets(None, {}))
    await source.start()
    nc = await nats.connect(nats_url)
    try:
        await until(lambda: bool(source.subscribed))
        await nc.publish(subject, b"x" * 800_000)
        await nc.publish(subject, b"small")
        await nc.flush()
        await until(lambda: len(stored) == 1)
        assert base64.b64decode(json.loads(stored[0].data or b"")["body"]) == b"small"
        assert "nats s/e: event " in caplog.text and "not stored, and never will be" in caplog.text
        assert f"is larger than {nats_url} takes (1048576 bytes)" in caplog.text
    finally:
        await nc.close()
        await source.stop()
        await bus.close()
