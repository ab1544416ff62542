"""HNS-style `config.d` subscriptions end to end on a real nats-server: producers publish plain JSON on an existing
JetStream stream, the engine POSTs each message as the envelope `{"subject", "data", "timestamp", "message_id"}` to
a real HTTP sink with the subscription's headers, retries on the backoff schedule, gives up after `retries`, and
loses nothing when it is killed with -9 between storing an event and delivering it."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import nats
import pytest
import yaml
from nats.js import JetStreamContext

from sensorium.buses.base import DEAD_LETTERS
from sensorium.buses.embedded import EmbeddedNats
from sensorium.buses.jetstream.stream import dead_letter_subject
from sensorium.engine.config import ConfigErrors, load
from sensorium.engine.convert import convert
from sensorium.engine.formats.hns import claims
from sensorium.sources.natsstream import check_subject
from tests.engine_harness import Engine, EngineProcess, free_port, unique
from tests.fixtures_http import HttpSink, Reply

ROOT = Path(__file__).resolve().parent.parent

SUBSCRIPTIONS = """\
nats: {stream: %(stream)s}
subscriptions:
  - name: %(prefix)s-all
    subject: ">"
    consumer: %(prefix)s-all-consumer
    webhook:
      url: "%(sink)s/all"
      headers: {X-API-Key: "${HNS_TEST_KEY}"}
      timeout: "5s"
    retries: %(retries)d
    backoff: "%(backoff)s"
    max_concurrency: 4
    ack_wait: "%(ack_wait)s"
"""

MAIL = """\
nats: {stream: %(stream)s}
subscriptions:
  - name: %(prefix)s-mail
    subject: "%(prefix)s.mail.>"
    consumer: %(prefix)s-mail-consumer
    webhook:
      url: "%(sink)s/mail"
      headers: {Authorization: "Bearer s3cret"}
"""


class Stream:
    """An existing JetStream stream capturing `<prefix>.>`, as HNS producers have it."""

    def __init__(self, js: JetStreamContext, name: str, prefix: str) -> None:
        self.js, self.name, self.prefix = js, name, prefix

    async def publish(self, subject: str, payload: bytes, msg_id: str | None = None) -> int:
        ack = await self.js.publish(f"{self.prefix}.{subject}", payload,
                                    headers={"Nats-Msg-Id": msg_id} if msg_id else None)
        return int(ack.seq)


@pytest.fixture
async def stream(nats_url: str) -> AsyncIterator[Stream]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    prefix = unique("hns").replace("-", "")
    await js.add_stream(name=f"{prefix}_events", subjects=[f"{prefix}.>"])
    try:
        yield Stream(js, f"{prefix}_events", prefix)
    finally:
        await js.delete_stream(f"{prefix}_events")
        await nc.close()


def write(folder: Path, stream: Stream, sink: HttpSink, *, retries: int = 2, backoff: str = "300ms",
          ack_wait: str = "120s", mail: bool = True) -> Path:
    values = {"stream": stream.name, "prefix": stream.prefix, "sink": sink.url, "retries": retries,
              "backoff": backoff, "ack_wait": ack_wait}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "10-all.yml").write_text(SUBSCRIPTIONS % values)
    if mail:
        (folder / "20-mail.yml").write_text(MAIL % values)
    return folder


_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


@pytest.mark.integration
async def test_envelopes_headers_and_subjects(stream: Stream, tmp_path: Path, http_sink: HttpSink,
                                              monkeypatch: pytest.MonkeyPatch, nats_url: str) -> None:
    monkeypatch.setenv("HNS_TEST_KEY", "k-123")
    folder = write(tmp_path / "config.d", stream, http_sink)
    async with Engine(folder, nats_url):
        await stream.publish("order.completed", b'{"order": 7, "total": 1.50}', msg_id="order-7")
        seq = await stream.publish("mail.welcome", b'{"to":"a@example.com"}')
        await stream.publish("ticket.raw", b"not json")
        got = await http_sink.wait_for(4, timeout=15)
        await asyncio.sleep(0.3)  # nothing more comes
        for stream_name, consumer in ((stream.name, f"{stream.prefix}-all-consumer"),  # the external stream
                                      ("default", f"{stream.prefix}-all-consumer")):  # the Sensorium bus
            info = await stream.js.consumer_info(stream_name, consumer)
            assert (info.num_ack_pending, info.num_pending) == (0, 0), stream_name  # 2xx: acknowledged
    assert len(http_sink.requests) == 4
    by_path: dict[str, list[bytes]] = {}
    for request in got:
        assert request.method == "POST" and request.header("Content-Type") == "application/json"
        by_path.setdefault(request.path, []).append(request.body)
        if request.path == "/all":
            assert request.header("X-API-Key") == "k-123" and request.header("Authorization") is None
        else:
            assert request.header("Authorization") == "Bearer s3cret" and request.header("X-API-Key") is None
    p = stream.prefix
    all_bodies = sorted(by_path["/all"], key=lambda b: json.loads(b)["subject"])
    for body in [*all_bodies, *by_path["/mail"]]:
        assert list(json.loads(body)) == ["subject", "data", "timestamp", "message_id"]  # key order
        assert _TIMESTAMP.fullmatch(json.loads(body)["timestamp"])
    envelopes = [json.loads(b) for b in all_bodies]
    assert [(e["subject"], e["data"], e["message_id"]) for e in envelopes] == [
        (f"{p}.mail.welcome", {"to": "a@example.com"}, f"{stream.name}-{seq}"),
        (f"{p}.order.completed", {"order": 7, "total": 1.50}, "order-7"),
        (f"{p}.ticket.raw", "not json", f"{stream.name}-{seq + 1}"),
    ]
    assert b'"data":{"order": 7, "total": 1.50},' in all_bodies[1]  # the payload byte for byte
    assert [json.loads(b)["message_id"] for b in by_path["/mail"]] == [f"{stream.name}-{seq}"]


@pytest.mark.integration
async def test_retry_schedule_then_given_up_and_the_next_message_flows(
        stream: Stream, tmp_path: Path, http_sink: HttpSink, monkeypatch: pytest.MonkeyPatch, nats_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("HNS_TEST_KEY", "k")
    folder = write(tmp_path / "config.d", stream, http_sink, retries=2, backoff="400ms", mail=False)
    http_sink.program(500, 404, 503)  # three failed attempts: the first and two retries
    with caplog.at_level(logging.ERROR, "sensorium.engine"):
        async with Engine(folder, nats_url):
            await stream.publish("order.failed", b'{"n": 1}', msg_id="fail-1")
            await http_sink.wait_for(3, timeout=15)
            await stream.publish("order.ok", b'{"n": 2}', msg_id="ok-2")
            got = await http_sink.wait_for(4, timeout=15)
            await asyncio.sleep(1.0)  # no further attempt of the first message
    assert len(http_sink.requests) == 4
    assert [json.loads(r.body)["message_id"] for r in got] == ["fail-1", "fail-1", "fail-1", "ok-2"]
    assert "fail-1" in caplog.text and "failed after retries" in caplog.text
    # dead-lettered: the event is stored on sensorium-dlq (where the original drops it), then acknowledged
    letter = await stream.js.get_last_msg(DEAD_LETTERS, dead_letter_subject(f"{stream.prefix}-all"))
    headers = letter.headers or {}
    assert (headers["ce-dlqreason"], headers["ce-dlqevent"]) == ("undeliverable", f"fail-1@{stream.prefix}-all."
                                                                                  f"{stream.prefix}-all")
    assert "webhook: failed after retries" in headers["ce-dlqerror"]
    assert json.loads(letter.data or b"")["data"] == {"n": 1}  # the event as the bus held it
    info = await stream.js.consumer_info("default", f"{stream.prefix}-all-consumer")
    assert (info.num_ack_pending, info.num_pending) == (0, 0)


@pytest.mark.integration
async def test_retry_delays_follow_backoff_doubling(stream: Stream, tmp_path: Path, http_sink: HttpSink,
                                                    monkeypatch: pytest.MonkeyPatch, nats_url: str) -> None:
    monkeypatch.setenv("HNS_TEST_KEY", "k")
    folder = write(tmp_path / "config.d", stream, http_sink, retries=3, backoff="300ms", mail=False)
    http_sink.program(500, 500, 500, 200)
    arrivals: list[float] = []
    loop = asyncio.get_running_loop()
    async with Engine(folder, nats_url):
        await stream.publish("order.flaky", b'{"n": 1}', msg_id="flaky-1")
        for count in range(1, 5):
            await http_sink.wait_for(count, timeout=15)
            arrivals.append(loop.time())
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    for gap, want in zip(gaps, (0.3, 0.6, 1.2), strict=True):
        assert want - 0.05 <= gap <= want + 0.35, (gaps, want)


@pytest.mark.integration
async def test_kill_9_between_stored_and_delivered_loses_nothing(stream: Stream, tmp_path: Path,
                                                                 http_sink: HttpSink, nats_url: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HNS_TEST_KEY", "k")
    folder = write(tmp_path / "config.d", stream, http_sink, ack_wait="2s", mail=False)
    http_sink.default = Reply(status=200, delay=30.0)  # the first engine's delivery never completes
    engine = EngineProcess(folder, nats_url, "--data-dir", str(tmp_path / "data"))
    await engine.start()
    try:
        for n in range(3):
            await stream.publish(f"order.n{n}", json.dumps({"n": n}).encode(), msg_id=f"kill-{n}")
        await http_sink.wait_for(3, timeout=15)  # stored on the bus, the deliveries in flight
    finally:
        await engine.kill()
    http_sink.default = Reply(status=200)
    again = EngineProcess(folder, nats_url, "--data-dir", str(tmp_path / "data"))
    await again.start()
    try:
        got = await http_sink.wait_for(6, timeout=20)
    finally:
        await again.terminate()
    delivered = [json.loads(r.body)["message_id"] for r in got[3:]]
    assert sorted(delivered) == ["kill-0", "kill-1", "kill-2"]


def test_validation_speaks_the_files_own_names(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(
        "subscriptions:\n"
        "  - name: x\n"
        "    subject: 'order..x'\n"
        "    consumer: c1\n"
        "    webhook: {url: 'ftp://x', timeout: 15 seconds}\n"
        "    backoff: 0s\n"
        "    max_concurency: 3\n")
    (tmp_path / "b.yml").write_text(
        "subscriptions:\n"
        "  - {name: y, subject: 'a.*', consumer: c1, webhook: {url: 'http://h/p'}}\n")
    (tmp_path / "c.yml").write_text(
        "subscriptions:\n"
        "  - {name: z, subject: 'a.*', consumer: c1, webhook: {url: 'http://h/p'}}\n")
    with pytest.raises(ConfigErrors) as caught:
        load([tmp_path])
    rendered = caught.value.render().replace(str(tmp_path) + "/", "")
    assert rendered.splitlines() == [
        "a.yml:3: subscriptions[0].subject: subject 'order..x' has an empty token (two dots, or a dot at an end)",
        "a.yml:5: subscriptions[0].webhook.url: URL scheme 'ftp' is not supported (want http:// or https://)",
        "a.yml:5: subscriptions[0].webhook.timeout: timeout '15 seconds' is not a duration (e.g. 2s, 500ms, 1m30s): "
        "time: unknown unit \" seconds\" in duration \"15 seconds\"",
        "a.yml:6: subscriptions[0].backoff: backoff must be positive, got '0s'",
        "a.yml:7: subscriptions[0].max_concurency: unknown field; did you mean max_concurrency?",
        "c.yml:2: subscriptions[0].consumer: consumer 'c1' is already used by the subscription at b.yml:2",
    ]
    assert claims({"subscriptions": []}) and not claims({"kind": "Sensor", "subscriptions": []})


async def _ready(client: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, object]]:
    async with client.get(url) as response:
        return response.status, await response.json()


@pytest.mark.integration
async def test_readiness_names_a_subscription_whose_stream_server_is_down(
        fresh_nats: EmbeddedNats, nats_url: str, tmp_path: Path, http_sink: HttpSink) -> None:
    """The external stream on a server of its own (`nats.url`): while it is down, /readyz is 503 naming the
    subscription; when it is back, ready again and the messages flow."""
    nc = await nats.connect(fresh_nats.url)
    await nc.jetstream().add_stream(name="ext", subjects=["order.>"])
    await nc.close()
    folder = tmp_path / "config.d"
    folder.mkdir()
    (folder / "a.yml").write_text(
        f"nats: {{url: {fresh_nats.url}}}\n"  # no stream: the one capturing order.> is found
        "subscriptions:\n"
        f"  - {{name: ext-orders, subject: 'order.>', consumer: ext-orders, webhook: {{url: '{http_sink.url}/o'}}}}\n")
    ops = free_port()
    engine = Engine(folder, nats_url)
    engine.options.ops_port = ops
    ready = f"http://127.0.0.1:{ops}/readyz"
    async with engine, aiohttp.ClientSession() as client:
        assert (await _ready(client, ready))[0] == 200
        down = asyncio.create_task(fresh_nats.restart(down_for=4.0))
        async with asyncio.timeout(10):
            while True:
                status, body = await _ready(client, ready)
                if status == 503:
                    break
                await asyncio.sleep(0.1)
        assert body["causes"] == [f"natsStream ext-orders/ext-orders: disconnected from {fresh_nats.url}"]
        await down
        async with asyncio.timeout(20):
            while (await _ready(client, ready))[0] != 200:
                await asyncio.sleep(0.2)
        nc = await nats.connect(fresh_nats.url)
        await nc.jetstream().publish("order.back", b'{"back": true}', headers={"Nats-Msg-Id": "back-1"})
        await nc.close()
        got = await http_sink.wait_for(1, timeout=15)
    assert [(r.json()["subject"], r.json()["message_id"]) for r in got] == [("order.back", "back-1")]


@pytest.mark.integration
async def test_a_message_too_large_for_the_bus_is_terminated_and_the_next_flows(
        stream: Stream, tmp_path: Path, http_sink: HttpSink, monkeypatch: pytest.MonkeyPatch, nats_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("HNS_TEST_KEY", "k")
    folder = write(tmp_path / "config.d", stream, http_sink, mail=False)
    with caplog.at_level(logging.ERROR, "sensorium.sources.natsstream"):
        async with Engine(folder, nats_url):
            await stream.publish("order.huge", b"x" * (1024 * 1024 - 300), msg_id="huge-1")
            await stream.publish("order.small", b'{"n": 1}', msg_id="small-2")
            got = await http_sink.wait_for(1, timeout=15)
            await asyncio.sleep(0.5)
    assert [json.loads(r.body)["message_id"] for r in got] == ["small-2"]
    assert "message huge-1 (subject" in caplog.text and "terminated on its stream" in caplog.text
    info = await stream.js.consumer_info(stream.name, f"{stream.prefix}-all-consumer")
    assert info.num_ack_pending == 0 and info.num_pending == 0  # nothing left to redeliver


def test_convert_prints_what_a_subscription_means(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAIL_WEBHOOK_URL", "https://mail.example/hook")
    monkeypatch.setenv("MAIL_WEBHOOK_SECRET", "s")
    docs = list(yaml.safe_load_all(convert([ROOT / "examples/hns/config.d/20-mail.yml"])))
    assert docs[0] == {"apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource", "metadata": {"name": "mail"},
                       "spec": {"natsStream": {"mail": {"subject": "mail.>", "consumer": "mail-consumer",
                                                        "stream": "hns_ticketing_events"}}}}
    sensor = docs[1]["spec"]
    assert sensor["consumer"] == {"name": "mail-consumer", "maxInFlight": 5, "ackWait": "60s", "deadLetter": True}
    assert sensor["dependencies"] == [{"name": "message", "eventSourceName": "mail", "eventName": "mail"}]
    trigger = sensor["triggers"][0]
    assert trigger["retryStrategy"] == {"steps": 6, "duration": "1s", "factor": 2.0, "jitter": 0.0}
    assert trigger["policy"] == {"status": {"allow": ["200-299"], "retry": ["100-599"]}}
    http = trigger["template"]["http"]
    assert (http["url"], http["method"], http["timeout"]) == ("https://mail.example/hook", "POST", 15)
    assert http["headers"] == {"Content-Type": "application/json", "Authorization": "Bearer s"}
    assert [p["dest"] for p in http["payload"]] == ["subject", "data", "timestamp", "message_id"]


@pytest.mark.integration
async def test_on_a_kafka_bus_the_stream_is_named_by_url(stream: Stream, nats_url: str, kafka_broker: str,
                                                        tmp_path: Path, http_sink: HttpSink) -> None:
    """With Kafka as the engine's bus, `nats.url` says where the stream is; the envelopes are the same."""
    folder = tmp_path / "config.d"
    folder.mkdir()
    (folder / "a.yml").write_text(
        f"nats: {{url: {nats_url}, stream: {stream.name}}}\n"
        "subscriptions:\n"
        f"  - {{name: {stream.prefix}-k, subject: '{stream.prefix}.order.*', consumer: {stream.prefix}-k,\n"
        f"     webhook: {{url: '{http_sink.url}/k', headers: {{X-Token: t}}}}}}\n")
    async with Engine(folder, "kafka://" + kafka_broker):
        await stream.publish("order.one", b'{"n":1}', msg_id="k-1")
        await stream.publish("mail.skip", b'{"n":2}', msg_id="k-2")  # not order.*
        await stream.publish("order.two", b"[2]", msg_id="k-3")
        got = await http_sink.wait_for(2, timeout=30)
        await asyncio.sleep(0.3)
    assert len(http_sink.requests) == 2
    assert [(r.path, r.header("X-Token")) for r in got] == [("/k", "t"), ("/k", "t")]
    bodies = sorted(json.loads(r.body)["message_id"] + " " + r.body.decode() for r in got)
    p = stream.prefix
    assert [b.split(" ", 1)[1].split(',"timestamp"')[0] for b in bodies] == [
        f'{{"subject":"{p}.order.one","data":{{"n":1}}', f'{{"subject":"{p}.order.two","data":[2]']


@pytest.mark.integration
async def test_the_engine_starts_before_the_stream_exists_and_is_ready_once_it_does(
        fresh_nats: EmbeddedNats, nats_url: str, tmp_path: Path, http_sink: HttpSink) -> None:
    folder = tmp_path / "config.d"
    folder.mkdir()
    (folder / "a.yml").write_text(
        f"nats: {{url: {fresh_nats.url}}}\n"
        "subscriptions:\n"
        f"  - {{name: later, subject: 'later.>', consumer: later, webhook: {{url: '{http_sink.url}/l'}}}}\n")
    ops = free_port()
    engine = Engine(folder, nats_url)
    engine.options.ops_port = ops
    ready = f"http://127.0.0.1:{ops}/readyz"
    async with engine, aiohttp.ClientSession() as client:
        status, body = await _ready(client, ready)
        assert status == 503
        assert body["causes"] == ["natsStream later/later: want exactly one stream capturing subject 'later.>' "
                                  "(found: none); set `stream`"]
        nc = await nats.connect(fresh_nats.url)
        js = nc.jetstream()
        await js.add_stream(name="later", subjects=["later.>"])
        await js.publish("later.x", b'{"x": 1}', headers={"Nats-Msg-Id": "l-1"})
        async with asyncio.timeout(20):
            while (await _ready(client, ready))[0] != 200:
                await asyncio.sleep(0.2)
        got = await http_sink.wait_for(1, timeout=15)
        await nc.close()
    assert [(r.json()["subject"], r.json()["message_id"]) for r in got] == [("later.x", "l-1")]


@pytest.mark.parametrize("subject", ["order.completed", ">", "mail.>", "order.*", "*.created", "a.*.c.>"])
def test_valid_nats_subjects(subject: str) -> None:
    assert check_subject(subject) == subject


@pytest.mark.parametrize("subject,why", [
    ("", "must not be empty"), ("order..x", "empty token"), (".order", "empty token"), ("order.", "empty token"),
    ("a.>.b", "'>' must be the last token"), ("mail*", "whole tokens"), ("a.b>", "whole tokens"),
    ("a b", "whitespace"), ("a.\tb", "whitespace"),
])
def test_invalid_nats_subjects(subject: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        check_subject(subject)


@pytest.mark.integration
async def test_max_concurrency_bounds_the_deliveries_in_flight(stream: Stream, tmp_path: Path, http_sink: HttpSink,
                                                              nats_url: str) -> None:
    folder = tmp_path / "config.d"
    folder.mkdir()
    (folder / "a.yml").write_text(
        f"nats: {{stream: {stream.name}}}\n"
        "subscriptions:\n"
        f"  - {{name: {stream.prefix}-c, subject: '>', consumer: {stream.prefix}-c, max_concurrency: 2,\n"
        f"     webhook: {{url: '{http_sink.url}/c'}}}}\n")
    http_sink.default = Reply(status=200, delay=0.5)
    arrivals: list[float] = []
    loop = asyncio.get_running_loop()
    async with Engine(folder, nats_url):
        for n in range(6):
            await stream.publish(f"order.c{n}", b"{}", msg_id=f"c-{n}")
        for count in range(1, 7):
            await http_sink.wait_for(count, timeout=15)
            arrivals.append(loop.time())
    assert arrivals[1] - arrivals[0] < 0.3  # two at once
    assert all(later - earlier >= 0.4 for earlier, later in zip(arrivals, arrivals[2:], strict=False))  # never three


@pytest.mark.integration
async def test_a_deleted_consumer_is_created_again_and_repeats_are_dropped_by_the_bus(
        stream: Stream, tmp_path: Path, http_sink: HttpSink, nats_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HNS_TEST_KEY", "k")
    folder = write(tmp_path / "config.d", stream, http_sink, mail=False)
    async with Engine(folder, nats_url):
        await stream.publish("order.first", b"{}", msg_id="first")
        await http_sink.wait_for(1, timeout=15)
        await stream.js.delete_consumer(stream.name, f"{stream.prefix}-all-consumer")
        await stream.publish("order.second", b"{}", msg_id="second")
        got = await http_sink.wait_for(2, timeout=20)
        await asyncio.sleep(0.5)
    # the new consumer read "first" again from the stream's start; the bus dropped the repeated event id
    assert [json.loads(r.body)["message_id"] for r in got] == ["first", "second"]
    assert len(http_sink.requests) == 2
